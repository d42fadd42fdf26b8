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
// in-process server, with a real clamd engine and with the builtin engine
// of the embedded defaults. bench/api/run.sh compares the clamd path with
// raw clamd side by side; the builtin one shows the server's own cost per
// request with little else on the CPU (ns/op, allocs/op).
func BenchmarkScanAPI(b *testing.B) {
	b.Run("clamd", func(b *testing.B) {
		addr := testenv.ClamdAddr(b)
		benchScanAPI(b, []config.Engine{{Name: "clamav", Type: config.TypeClamd, Address: addr, Timeout: time.Minute}})
	})
	b.Run("builtin", func(b *testing.B) { benchScanAPI(b, config.DefaultEngines()) })
}

func benchScanAPI(b *testing.B, engines []config.Engine) {
	c := &client{base: ""}
	cfg := config.Default()
	cfg.Listen, cfg.DataDir = "127.0.0.1:0", b.TempDir()
	cfg.Log.Level = "error"
	cfg.Engines = engines
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
	b.ReportAllocs()
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
