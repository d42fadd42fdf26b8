package clamd

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/spool"
	"github.com/lazaret/lazaret/internal/testenv"
)

// naiveInstream is the baseline the engine must beat: a new connection
// per file, the whole file in one chunk, one write, read the reply.
func naiveInstream(addr string, data []byte) (string, error) {
	network, address := "tcp", strings.TrimPrefix(addr, "tcp://")
	if p, ok := strings.CutPrefix(addr, "unix://"); ok {
		network, address = "unix", p
	}
	conn, err := net.DialTimeout(network, address, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	msg := make([]byte, 0, len(cmdInstream)+4+len(data)+4)
	msg = append(msg, cmdInstream...)
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(data)))
	msg = append(msg, data...)
	msg = append(msg, 0, 0, 0, 0)
	if _, err := conn.Write(msg); err != nil {
		return "", err
	}
	reply, err := bufio.NewReader(conn).ReadString(0)
	return strings.TrimSuffix(reply, "\x00"), err
}

// BenchmarkScan compares the engine, with pooled IDSESSION connections
// and with a connection per scan, against naiveInstream, on fresh random
// 16 KiB files (clamd caches clean results by content, so every file must
// be new) at 1, 4 and 8 concurrent scans. It reports files/s.
//
// Concurrency is set by starting that many goroutines over b.N files:
// b.SetParallelism multiplies by GOMAXPROCS, which cannot make 1 on a
// multi-core machine.
//
//	go test -run '^$' -bench BenchmarkScan -benchtime 2000x ./internal/engine/clamd/
func BenchmarkScan(b *testing.B) { benchScan(b, testenv.ClamdAddr(b)) }

// BenchmarkScanUnix is BenchmarkScan on clamd's unix socket, where the
// engine hands clamd each sample as a descriptor (zFILDES) and the naive
// client streams it over the same socket.
//
//	go test -run '^$' -bench BenchmarkScanUnix -benchtime 2000x ./internal/engine/clamd/
func BenchmarkScanUnix(b *testing.B) {
	benchScan(b, testenv.StartClamd(b, testenv.ClamdOptions{}).Unix)
}

func benchScan(b *testing.B, addr string) {
	session, err := New(Config{Name: "clamav", Addresses: []string{addr}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer session.Close()
	fresh, err := New(Config{Name: "clamav", Addresses: []string{addr}, IdleTimeout: -1}, nil)
	if err != nil {
		b.Fatal(err)
	}
	engineScan := func(e *Engine) func([]byte) error {
		return func(data []byte) error {
			res, err := e.Scan(context.Background(), spool.Bytes(data).Sample("f"))
			if got := scan.Normalize("clamav", res, err); got.Verdict != scan.Clean {
				return fmt.Errorf("got %s (%s), want clean", got.Verdict, got.Detail)
			}
			return nil
		}
	}
	for _, conc := range []int{1, 4, 8} {
		for _, c := range []struct {
			name string
			scan func([]byte) error
		}{
			{"naive", func(data []byte) error {
				reply, err := naiveInstream(addr, data)
				if err == nil && reply != "stream: OK" {
					err = fmt.Errorf("got %q, want stream: OK", reply)
				}
				return err
			}},
			{"engine-fresh", engineScan(fresh)},
			{"engine-session", engineScan(session)},
		} {
			b.Run(fmt.Sprintf("%s/conc=%d", c.name, conc), func(b *testing.B) {
				b.SetBytes(16 << 10)
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				for range conc {
					wg.Go(func() {
						data := make([]byte, 16<<10)
						for next.Add(1) <= int64(b.N) {
							rand.Read(data)
							if err := c.scan(data); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "files/s")
			})
		}
	}
}

// BenchmarkParseReply measures the reply parser alone.
func BenchmarkParseReply(b *testing.B) {
	raw := []byte("stream: Eicar-Test-Signature.UNOFFICIAL FOUND\x00")
	for b.Loop() {
		ParseReply(raw)
	}
}
