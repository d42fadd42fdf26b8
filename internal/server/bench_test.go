package server

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/testenv"
)

// BenchmarkScanAPI posts fresh 16 KiB files to POST /v1/scan on an
// in-process server with a real clamd engine. bench/api/run.sh compares
// the same path with raw clamd side by side.
func BenchmarkScanAPI(b *testing.B) {
	addr := testenv.ClamdAddr(b)
	c := &client{base: ""}
	cfg := config.Default()
	cfg.Listen, cfg.DataDir = "127.0.0.1:0", b.TempDir()
	cfg.Log.Level = "error"
	cfg.Engines = []config.Engine{{Name: "clamav", Type: config.TypeClamd, Address: addr, Timeout: time.Minute}}
	a, err := Start(b.Context(), cfg, Options{HTTP: true})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Shutdown(b.Context())
	c.base = "http://" + a.Addr()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	hc := &http.Client{Transport: tr}
	b.SetBytes(16 << 10)
	b.SetParallelism(2) // 2 x GOMAXPROCS workers
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		data := make([]byte, 16<<10)
		for pb.Next() {
			rand.Read(data)
			resp, err := hc.Post(c.base+"/v1/scan?name=f", "application/octet-stream", bytes.NewReader(data))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}
