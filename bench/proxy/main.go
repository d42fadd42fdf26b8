// Command proxy measures `lazaret proxy` against fetching from the same
// upstream directly, side by side in one run: 1,000 small files fetched
// through the proxy for the first time (fetch + store + scan) and again
// from its cache, against direct fetches; and the time to the first byte
// of a 100 MiB file.
//
// The upstream is a Go http.FileServer in a process of its own (this
// binary started again with -serve), as the proxy is: a client talking to
// a server in another process pays a cross-process hop that a server in
// the client's own process does not. The same folder is also served by a
// file server inside this process, whose numbers are printed too (the
// comparison this benchmark used to make).
//
// The cached fetches are measured in rounds, each fetching every file
// directly from both upstreams and through the proxy in an order that
// rotates; the ratios reported are the medians of the rounds' ratios, so
// a burst of load on the machine moves one round, not the result.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lazaret/lazaret/bench/internal/benchkit"
)

func main() {
	bin := flag.String("lazaret", "", "lazaret binary")
	n := flag.Int("n", 1000, "small files")
	size := flag.Int("size", 16<<10, "small file size")
	bigMB := flag.Int("big", 100, "big file size in MiB")
	conc := flag.Int("c", 8, "concurrent requests")
	rounds := flag.Int("rounds", 9, "rounds of cached fetches")
	repeat := flag.Int("repeat", 5, "passes over the small files per measurement")
	serve := flag.String("serve", "", "serve this folder (the upstream mode) and print the address")
	flag.Parse()
	var err error
	if *serve != "" {
		err = serveDir(*serve)
	} else {
		err = run(*bin, *n, *size, *bigMB, *conc, *rounds, *repeat)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "proxy bench:", err)
		os.Exit(1)
	}
}

// serveDir is the upstream's process: a plain Go file server on a free
// loopback port, whose address is the first line on stdout. It stops when
// its stdin closes (the benchmark ended).
func serveDir(dir string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir)), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		srv.Close()
	}()
	fmt.Println(ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("upstream: %w", err)
	}
	return nil
}

// child is a process of the benchmark: the upstream or the proxy.
type child struct {
	cmd   *exec.Cmd
	stdin io.Closer
}

func (c *child) stop() {
	if c.stdin != nil {
		c.stdin.Close()
	}
	c.cmd.Process.Kill()
	c.cmd.Wait()
}

// startUpstream starts this binary in -serve mode on dir.
func startUpstream(dir string) (*child, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", fmt.Errorf("upstream: %w", err)
	}
	cmd := exec.Command(self, "-serve", dir)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, "", fmt.Errorf("upstream: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", fmt.Errorf("upstream: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("upstream: %w", err)
	}
	c := &child{cmd: cmd, stdin: in}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		c.stop()
		return nil, "", fmt.Errorf("upstream: no address: %w", err)
	}
	return c, "http://" + strings.TrimSpace(line), nil
}

func run(bin string, n, size, bigMB, conc, rounds, repeat int) error {
	if bin == "" {
		return errors.New("-lazaret: required")
	}
	dir, err := os.MkdirTemp("", "lzproxybench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	files := filepath.Join(dir, "up")
	if err := os.MkdirAll(files, 0o755); err != nil {
		return err
	}
	buf := make([]byte, size)
	for i := range n {
		rand.Read(buf)
		if err := os.WriteFile(filepath.Join(files, fmt.Sprintf("f%d.bin", i)), buf, 0o644); err != nil {
			return err
		}
	}
	big, err := os.Create(filepath.Join(files, "big.bin"))
	if err != nil {
		return err
	}
	if _, err := io.CopyN(big, rand.Reader, int64(bigMB)<<20); err != nil {
		return err
	}
	big.Close()

	up, upstream, err := startUpstream(files)
	if err != nil {
		return err
	}
	defer up.stop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go http.Serve(ln, http.FileServer(http.Dir(files)))
	inproc := "http://" + ln.Addr().String()

	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	paddr := pl.Addr().String()
	pl.Close()
	cmd := exec.Command(bin, "proxy", "--upstream", upstream, "--listen", paddr, "--data-dir", filepath.Join(dir, "data"))
	cmd.Env = append(os.Environ(), "LAZARET_LOG_LEVEL=error")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	px := &child{cmd: cmd}
	defer px.stop()
	proxy := "http://" + paddr
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", paddr); err == nil {
			c.Close()
			break
		}
		if i > 250 {
			return fmt.Errorf("proxy did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conc * 2
	hc := &http.Client{Transport: tr}
	fetchAll := func(base string, passes int) (time.Duration, error) {
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, conc)
		total := int64(n * passes)
		start := time.Now()
		for range conc {
			wg.Go(func() {
				for {
					i := next.Add(1) - 1
					if i >= total {
						return
					}
					resp, err := hc.Get(fmt.Sprintf("%s/f%d.bin", base, i%int64(n)))
					if err != nil {
						errs <- err
						return
					}
					m, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || m != int64(size) {
						errs <- fmt.Errorf("%s: status %d, %d bytes", base, resp.StatusCode, m)
						return
					}
				}
			})
		}
		wg.Wait()
		select {
		case err := <-errs:
			return 0, err
		default:
		}
		return time.Since(start), nil
	}
	rate := func(d time.Duration, passes int) float64 { return float64(n*passes) / d.Seconds() }

	// Connections warm, files in the page cache.
	for _, base := range []string{upstream, inproc} {
		if _, err := fetchAll(base, 1); err != nil {
			return err
		}
	}
	first, err := fetchAll(proxy, 1)
	if err != nil {
		return err
	}
	if _, err := fetchAll(proxy, 1); err != nil { // warm the cached path
		return err
	}

	type round struct {
		proc, inproc, cached time.Duration
		procCPU, cachedCPU   time.Duration // the server process's CPU time
	}
	var rs []round
	order := []string{"proc", "inproc", "cached"}
	for r := range rounds {
		var cur round
		for k := range order {
			var err error
			switch order[(k+r)%len(order)] {
			case "proc":
				c0 := benchkit.ProcCPU(up.cmd.Process.Pid)
				cur.proc, err = fetchAll(upstream, repeat)
				cur.procCPU = benchkit.ProcCPU(up.cmd.Process.Pid) - c0
			case "inproc":
				cur.inproc, err = fetchAll(inproc, repeat)
			case "cached":
				c0 := benchkit.ProcCPU(px.cmd.Process.Pid)
				cur.cached, err = fetchAll(proxy, repeat)
				cur.cachedCPU = benchkit.ProcCPU(px.cmd.Process.Pid) - c0
			}
			if err != nil {
				return err
			}
		}
		rs = append(rs, cur)
	}
	median := func(f func(round) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	fmt.Printf("%d files of %d bytes, %d concurrent; %d rounds of %d passes, medians\n", n, size, conc, rounds, repeat)
	fmt.Printf("direct, upstream in its own process:  %7.0f files/s\n", median(func(r round) float64 { return rate(r.proc, repeat) }))
	fmt.Printf("direct, upstream in the bench process: %7.0f files/s\n", median(func(r round) float64 { return rate(r.inproc, repeat) }))
	fmt.Printf("proxy, first fetch + scan:            %7.0f files/s  (%.2fx the own-process upstream's median time, one pass)\n",
		rate(first, 1), first.Seconds()/median(func(r round) float64 { return r.proc.Seconds() / float64(repeat) }))
	fmt.Printf("proxy, cached:                        %7.0f files/s  (%.2fx the own-process upstream's time, target <= 1.2x; %.2fx the in-process one's)\n",
		median(func(r round) float64 { return rate(r.cached, repeat) }),
		median(func(r round) float64 { return r.cached.Seconds() / r.proc.Seconds() }),
		median(func(r round) float64 { return r.cached.Seconds() / r.inproc.Seconds() }))
	fmt.Print("rounds (cached/own-process, cached/in-process):")
	for _, r := range rs {
		fmt.Printf(" %.2f/%.2f", r.cached.Seconds()/r.proc.Seconds(), r.cached.Seconds()/r.inproc.Seconds())
	}
	fmt.Println()
	if perReq := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n*repeat) }; rs[0].procCPU > 0 {
		fmt.Printf("server CPU per request (user+system, medians): upstream %.1f µs, proxy cached %.1f µs\n",
			median(func(r round) float64 { return perReq(r.procCPU) }), median(func(r round) float64 { return perReq(r.cachedCPU) }))
	}

	ttfb := func(url string) (time.Duration, time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		start := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return 0, 0, err
		}
		defer resp.Body.Close()
		one := make([]byte, 1)
		if _, err := io.ReadFull(resp.Body, one); err != nil {
			return 0, 0, fmt.Errorf("%s: status %d: %w", url, resp.StatusCode, err)
		}
		first := time.Since(start)
		io.Copy(io.Discard, resp.Body)
		return first, time.Since(start), nil
	}
	d1, dAll, err := ttfb(upstream + "/big.bin")
	if err != nil {
		return err
	}
	p1, pAll, err := ttfb(proxy + "/big.bin")
	if err != nil {
		return err
	}
	c1, cAll, err := ttfb(proxy + "/big.bin")
	if err != nil {
		return err
	}
	fmt.Printf("%d MiB file: direct first byte %v (all %v); proxy first fetch first byte %v (all %v); proxy cached first byte %v (all %v)\n",
		bigMB, d1.Round(time.Millisecond), dAll.Round(time.Millisecond), p1.Round(time.Millisecond), pAll.Round(time.Millisecond),
		c1.Round(time.Millisecond), cAll.Round(time.Millisecond))
	return nil
}
