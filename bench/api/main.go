// Command api measures lazaret's synchronous API against raw clamd, side
// by side in one run on the same clamd: fresh random files, POST /v1/scan
// (raw body, keep-alive connections) versus a naive zINSTREAM with no HTTP
// (a new connection per file). It prints files/s for both and the ratio.
// bench/api/run.sh starts clamd and `lazaret serve` and calls it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lazaret/lazaret/bench/internal/benchkit"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "api bench:", err)
		os.Exit(1)
	}
}

func ints(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err == nil {
			out = append(out, n)
		}
	}
	return out
}

func run(ctx context.Context) error {
	clamd := flag.String("clamd", "", "clamd address tcp://127.0.0.1:PORT")
	base := flag.String("lazaret", "", "lazaret URL http://127.0.0.1:PORT")
	n := flag.Int("n", 1000, "files per measurement")
	size := flag.Int("size", 16<<10, "file size in bytes")
	conc := flag.String("c", "1,4,16", "concurrency levels")
	flag.Parse()
	if *clamd == "" || *base == "" {
		return fmt.Errorf("need -clamd and -lazaret")
	}
	levels := ints(*conc)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Minute}
	viaAPI := func(ctx context.Context, data []byte) error {
		req, _ := http.NewRequestWithContext(ctx, "POST", *base+"/v1/scan?name=f", bytes.NewReader(data))
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var job struct{ Verdict, Error string }
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &job); err != nil || job.Verdict != "clean" {
			return fmt.Errorf("lazaret answered %d %s", resp.StatusCode, b)
		}
		return nil
	}
	raw := func(ctx context.Context, data []byte) error { return benchkit.Naive(ctx, *clamd, data) }

	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "size\tconcurrency\tfiles\traw clamd files/s\tlazaret /v1/scan files/s\tratio\t\n")
	for _, c := range levels {
		// Warm up both paths (connections, clamd threads) with a few files.
		benchkit.Measure(ctx, raw, 2*c, *size, c)
		benchkit.Measure(ctx, viaAPI, 2*c, *size, c)
		// Alternate the two so that drift of the machine hits both.
		var tRaw, tAPI time.Duration
		for range 2 {
			d, err := benchkit.Measure(ctx, raw, *n/2, *size, c)
			if err != nil {
				return fmt.Errorf("raw: %w", err)
			}
			tRaw += d
			d, err = benchkit.Measure(ctx, viaAPI, *n/2, *size, c)
			if err != nil {
				return fmt.Errorf("api: %w", err)
			}
			tAPI += d
		}
		fr := float64(*n) / tRaw.Seconds()
		fa := float64(*n) / tAPI.Seconds()
		fmt.Fprintf(tw, "%d\t%d\t%d\t%.0f\t%.0f\t%.2f\t\n", *size, c, *n, fr, fa, fa/fr)
	}
	return tw.Flush()
}
