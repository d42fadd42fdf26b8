package proxy

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/testenv"
)

// scanOnly hides the pipeline's Lookup, so the proxy scans cached bytes
// again before every serve (what a Scanner without a verdict cache gets).
type scanOnly struct{ Scanner }

// BenchmarkCachedServe measures a GET of cached, clean content: the
// verdict confirmed by the pipeline's verdict cache (lookup) against the
// bytes run through Pipeline.Scan again on every serve (rescan), which the
// pipeline answers from its verdict cache without an engine call but which
// reads, hashes and spools the bytes and stores a new job each time.
func BenchmarkCachedServe(b *testing.B) {
	for _, size := range []int{16 << 10, 1 << 20, 16 << 20} {
		for _, mode := range []string{"lookup", "rescan"} {
			b.Run(fmt.Sprintf("%s/%dKiB", mode, size>>10), func(b *testing.B) {
				up := newUpstream(b)
				up.set("/f", upFile{body: testenv.Deterministic("bench", size)})
				var sc Scanner = newPipeline(b, config.DefaultEngines())
				if mode == "rescan" {
					sc = scanOnly{sc}
				}
				_, srv := startProxy(b, Config{Upstream: up.URL, Scanner: sc})
				url := srv.URL + "/f"
				if a := get(b, url); a.status != http.StatusOK {
					b.Fatalf("got %d", a.status)
				}
				b.SetBytes(int64(size))
				b.ResetTimer()
				for b.Loop() {
					resp, err := http.Get(url)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Fatalf("got %d", resp.StatusCode)
					}
				}
			})
		}
	}
}

// BenchmarkDirect is the upstream without the proxy, for comparison.
func BenchmarkDirect(b *testing.B) {
	for _, size := range []int{16 << 10, 1 << 20, 16 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			up := newUpstream(b)
			up.set("/f", upFile{body: testenv.Deterministic("bench", size)})
			b.SetBytes(int64(size))
			for b.Loop() {
				resp, err := http.Get(up.URL + "/f")
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
