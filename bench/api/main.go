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
	slices := flag.Int("slices", 10, "alternate the two contenders this many times per level")
	clamdPID := flag.Int("clamd-pid", 0, "clamd's pid, to report its CPU time per file")
	lazaretPID := flag.Int("lazaret-pid", 0, "lazaret's pid, to report its CPU time per file")
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
	fmt.Fprintf(tw, "size\tconcurrency\tfiles\traw clamd files/s\tlazaret /v1/scan files/s\tratio\t"+
		"CPU µs/file raw: client+clamd\tCPU µs/file API: client+lazaret+clamd\t\n")
	for _, c := range levels {
		// Warm up both paths (connections, clamd threads) with a few files.
		benchkit.Measure(ctx, raw, 2*c, *size, c)
		benchkit.Measure(ctx, viaAPI, 2*c, *size, c)
		// Alternate the two in short slices so that drift of the machine
		// (its speed changes by 2x within a minute on shared hosts) hits
		// both alike.
		var tRaw, tAPI time.Duration
		var cRaw, cAPI [3]time.Duration // client, clamd, lazaret
		sample := func() [3]time.Duration {
			return [3]time.Duration{benchkit.CPUTime(), benchkit.ProcCPU(*clamdPID), benchkit.ProcCPU(*lazaretPID)}
		}
		add := func(sum *[3]time.Duration, a, b [3]time.Duration) {
			for i := range sum {
				sum[i] += b[i] - a[i]
			}
		}
		k := max(1, min(*slices, *n/(2*c)))
		for range k {
			c0 := sample()
			d, err := benchkit.Measure(ctx, raw, *n/k, *size, c)
			if err != nil {
				return fmt.Errorf("raw: %w", err)
			}
			c1 := sample()
			tRaw += d
			d, err = benchkit.Measure(ctx, viaAPI, *n/k, *size, c)
			if err != nil {
				return fmt.Errorf("api: %w", err)
			}
			add(&cRaw, c0, c1)
			add(&cAPI, c1, sample())
			tAPI += d
		}
		files := *n / k * k
		fr := float64(files) / tRaw.Seconds()
		fa := float64(files) / tAPI.Seconds()
		per := func(d [3]time.Duration, parts int) string {
			us := func(d time.Duration) int64 { return d.Microseconds() / int64(files) }
			if *clamdPID == 0 {
				return "-"
			}
			if parts == 2 {
				return fmt.Sprintf("%d+%d", us(d[0]), us(d[1]))
			}
			return fmt.Sprintf("%d+%d+%d", us(d[0]), us(d[2]), us(d[1]))
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%.0f\t%.0f\t%.2f\t%s\t%s\t\n", *size, c, files, fr, fa, fa/fr, per(cRaw, 2), per(cAPI, 3))
	}
	return tw.Flush()
}
