// Command api measures lazaret's synchronous API against raw clamd, side
// by side in one run on the same clamd: fresh random files, POST /v1/scan
// (raw body, keep-alive connections) versus a naive zINSTREAM with no HTTP
// (a new connection per file). It prints files/s for both and the ratio.
// With -clamav-rest it measures a third contender in the same slices: the
// public REST front-end for clamd (github.com/ajilach/clamav-rest, built by
// bench/api/clamav-rest.sh), POST /v2/scan with a multipart file, and
// prints lazaret/clamav-rest too.
// bench/api/run.sh starts clamd, `lazaret serve` (and clamav-rest) and
// calls it.
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
	"sync"
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

// A contender is one way of scanning a file, measured in turn with the
// others on the same clamd.
type contender struct {
	name  string // in errors
	rate  string // the files/s column
	cpu   string // the CPU column: which processes' time it adds up
	scan  func(context.Context, []byte) error
	pid   int // its server process between the client and clamd, 0 for none
	wall  time.Duration
	spent []time.Duration // CPU over its slices: client, clamd, then each contender's pid
}

func run(ctx context.Context) error {
	clamd := flag.String("clamd", "", "clamd address tcp://127.0.0.1:PORT")
	base := flag.String("lazaret", "", "lazaret URL http://127.0.0.1:PORT")
	rest := flag.String("clamav-rest", "", "clamav-rest URL http://127.0.0.1:PORT, to measure it as a third contender")
	n := flag.Int("n", 1000, "files per measurement")
	size := flag.Int("size", 16<<10, "file size in bytes")
	conc := flag.String("c", "1,4,16", "concurrency levels")
	slices := flag.Int("slices", 10, "alternate the contenders this many times per level")
	clamdPID := flag.Int("clamd-pid", 0, "clamd's pid, to report its CPU time per file")
	lazaretPID := flag.Int("lazaret-pid", 0, "lazaret's pid, to report its CPU time per file")
	restPID := flag.Int("clamav-rest-pid", 0, "clamav-rest's pid, to report its CPU time per file")
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
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
		if err := json.Unmarshal(b, &job); err != nil || job.Verdict != "clean" {
			return fmt.Errorf("lazaret answered %d %s", resp.StatusCode, b)
		}
		return nil
	}
	raw := func(ctx context.Context, data []byte) error { return benchkit.Naive(ctx, *clamd, data) }

	cs := []*contender{
		{name: "raw", rate: "raw clamd files/s", cpu: "raw: client+clamd", scan: raw},
		{name: "api", rate: "lazaret /v1/scan files/s", cpu: "API: client+lazaret+clamd", scan: viaAPI, pid: *lazaretPID},
	}
	if *rest != "" {
		cs = append(cs, &contender{name: "clamav-rest", rate: "clamav-rest /v2/scan files/s",
			cpu: "clamav-rest: client+clamav-rest+clamd", scan: viaClamavREST(hc, *rest), pid: *restPID})
	}
	api := cs[1]

	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "size\tconcurrency\tfiles\t")
	for _, c := range cs {
		fmt.Fprintf(tw, "%s\t", c.rate)
	}
	fmt.Fprintf(tw, "ratio\t")
	if len(cs) > 2 {
		fmt.Fprintf(tw, "lazaret/clamav-rest\t")
	}
	for _, c := range cs {
		fmt.Fprintf(tw, "CPU µs/file %s\t", c.cpu)
	}
	fmt.Fprintln(tw)
	sample := func() []time.Duration {
		s := []time.Duration{benchkit.CPUTime(), benchkit.ProcCPU(*clamdPID)}
		for _, c := range cs {
			s = append(s, benchkit.ProcCPU(c.pid))
		}
		return s
	}
	for _, level := range levels {
		// Warm up every path (connections, clamd threads) with a few files.
		for _, c := range cs {
			benchkit.Measure(ctx, c.scan, 2*level, *size, level)
			c.wall, c.spent = 0, make([]time.Duration, 2+len(cs))
		}
		// Alternate the contenders in short slices so that drift of the
		// machine (its speed changes by 2x within a minute on shared hosts)
		// hits all alike.
		k := max(1, min(*slices, *n/(2*level)))
		for range k {
			for _, c := range cs {
				before := sample()
				d, err := benchkit.Measure(ctx, c.scan, *n/k, *size, level)
				if err != nil {
					return fmt.Errorf("%s: %w", c.name, err)
				}
				for i, t := range sample() {
					c.spent[i] += t - before[i]
				}
				c.wall += d
			}
		}
		files := *n / k * k
		rate := func(c *contender) float64 { return float64(files) / c.wall.Seconds() }
		fmt.Fprintf(tw, "%d\t%d\t%d\t", *size, level, files)
		for _, c := range cs {
			fmt.Fprintf(tw, "%.0f\t", rate(c))
		}
		fmt.Fprintf(tw, "%.2f\t", rate(api)/rate(cs[0]))
		if len(cs) > 2 {
			fmt.Fprintf(tw, "%.2f\t", rate(api)/rate(cs[2]))
		}
		for i, c := range cs {
			fmt.Fprintf(tw, "%s\t", cpuPerFile(c, 2+i, files, *clamdPID != 0))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// maxAnswer bounds what is read of a front-end's answer: a verdict is a
// few hundred bytes.
const maxAnswer = 1 << 20

// cpuPerFile formats a contender's CPU per file: the client's, its own
// server's (if it has one) and clamd's.
func cpuPerFile(c *contender, own, files int, known bool) string {
	if !known {
		return "-"
	}
	us := func(d time.Duration) int64 { return d.Microseconds() / int64(files) }
	if c.pid == 0 {
		return fmt.Sprintf("%d+%d", us(c.spent[0]), us(c.spent[1]))
	}
	return fmt.Sprintf("%d+%d+%d", us(c.spent[0]), us(c.spent[own]), us(c.spent[1]))
}

// viaClamavREST scans a file through clamav-rest's POST /v2/scan: one
// multipart/form-data part named "file" with a file name, as its README
// shows with curl -F. It answers 200 and [{"Status":"OK",...}] when clean.
// The body goes out from one buffer, in one write like lazaret's raw body.
func viaClamavREST(hc *http.Client, base string) func(context.Context, []byte) error {
	const boundary = "lazaret-bench-7f3a9c1e5b2d4f60"
	head := "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n" +
		"Content-Type: application/octet-stream\r\n\r\n"
	tail := "\r\n--" + boundary + "--\r\n"
	var bufs sync.Pool
	return func(ctx context.Context, data []byte) error {
		buf, _ := bufs.Get().(*[]byte)
		if buf == nil {
			buf = new([]byte)
		}
		defer bufs.Put(buf)
		*buf = append(append(append((*buf)[:0], head...), data...), tail...)
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v2/scan", bytes.NewReader(*buf))
		req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var res []struct{ Status string }
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
		if err := json.Unmarshal(b, &res); err != nil || resp.StatusCode != http.StatusOK || len(res) != 1 || res[0].Status != "OK" {
			return fmt.Errorf("clamav-rest answered %d %s", resp.StatusCode, b)
		}
		return nil
	}
}
