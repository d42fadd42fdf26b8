// Command proxy measures `lazaret proxy` against fetching from the same
// upstream directly, side by side in one run: 1,000 small files fetched
// through the proxy for the first time (fetch + store + scan) and again
// from its cache, against direct fetches; and the time to the first byte
// of a 100 MiB file. The upstream is an HTTP file server in this process;
// the proxy is the lazaret binary given as -lazaret.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	bin := flag.String("lazaret", "", "lazaret binary")
	n := flag.Int("n", 1000, "small files")
	size := flag.Int("size", 16<<10, "small file size")
	bigMB := flag.Int("big", 100, "big file size in MiB")
	conc := flag.Int("c", 8, "concurrent requests")
	flag.Parse()
	if err := run(*bin, *n, *size, *bigMB, *conc); err != nil {
		fmt.Fprintln(os.Stderr, "proxy bench:", err)
		os.Exit(1)
	}
}

func run(bin string, n, size, bigMB, conc int) error {
	dir, err := os.MkdirTemp("", "lzproxybench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	files := filepath.Join(dir, "up")
	os.MkdirAll(files, 0o755)
	buf := make([]byte, size)
	for i := range n {
		rand.Read(buf)
		if err := os.WriteFile(filepath.Join(files, fmt.Sprintf("f%d.bin", i)), buf, 0o644); err != nil {
			return err
		}
	}
	big, _ := os.Create(filepath.Join(files, "big.bin"))
	io.CopyN(big, rand.Reader, int64(bigMB)<<20)
	big.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go http.Serve(ln, http.FileServer(http.Dir(files)))
	upstream := "http://" + ln.Addr().String()

	pl, _ := net.Listen("tcp", "127.0.0.1:0")
	paddr := pl.Addr().String()
	pl.Close()
	cmd := exec.Command(bin, "proxy", "--upstream", upstream, "--listen", paddr, "--data-dir", filepath.Join(dir, "data"))
	cmd.Env = append(os.Environ(), "LAZARET_LOG_LEVEL=error")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	proxy := "http://" + paddr
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", paddr); err == nil {
			c.Close()
			break
		}
		if i > 200 {
			return fmt.Errorf("proxy did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conc * 2
	hc := &http.Client{Transport: tr}
	fetchAll := func(base string) (time.Duration, error) {
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, conc)
		start := time.Now()
		for range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1) - 1
					if i >= int64(n) {
						return
					}
					resp, err := hc.Get(fmt.Sprintf("%s/f%d.bin", base, i))
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
			}()
		}
		wg.Wait()
		select {
		case err := <-errs:
			return 0, err
		default:
		}
		return time.Since(start), nil
	}
	direct1, err := fetchAll(upstream)
	if err != nil {
		return err
	}
	first, err := fetchAll(proxy)
	if err != nil {
		return err
	}
	cached, err := fetchAll(proxy)
	if err != nil {
		return err
	}
	direct2, err := fetchAll(upstream)
	if err != nil {
		return err
	}
	direct := (direct1 + direct2) / 2
	rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	fmt.Printf("%d files of %d bytes, %d concurrent\n", n, size, conc)
	fmt.Printf("direct from upstream:      %7.0f files/s\n", rate(direct))
	fmt.Printf("proxy, first fetch + scan: %7.0f files/s  (%.2fx the direct time)\n", rate(first), first.Seconds()/direct.Seconds())
	fmt.Printf("proxy, cached:             %7.0f files/s  (%.2fx the direct time; target <= 1.2x)\n", rate(cached), cached.Seconds()/direct.Seconds())

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
