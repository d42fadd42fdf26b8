package clamsig

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// benchSigs returns nbody random body signatures (plain hex, "??",
// "{n-m}", "*", "(aa|bb)"; every part with a static run of at least four
// bytes) and nhash random MD5 signatures.
func benchSigs(nbody, nhash int) (ndb, hdb string) {
	r := rand.New(rand.NewPCG(1, 2))
	hx := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return hex.EncodeToString(b)
	}
	var sb strings.Builder
	for i := range nbody {
		fmt.Fprintf(&sb, "Bench.Body.%d:0:*:%s", i, hx(4+r.IntN(8)))
		for range r.IntN(4) {
			switch r.IntN(4) {
			case 0:
				sb.WriteString("??")
			case 1:
				fmt.Fprintf(&sb, "{%d-%d}", r.IntN(4), 4+r.IntN(16))
			case 2:
				sb.WriteString("*")
			case 3:
				fmt.Fprintf(&sb, "(%s|%s)", hx(1), hx(1))
			}
			sb.WriteString(hx(4 + r.IntN(8)))
		}
		sb.WriteString("\n")
	}
	ndb = sb.String()
	sb.Reset()
	for i := range nhash {
		fmt.Fprintf(&sb, "%s:%d:Bench.Hash.%d\n", hx(16), 1+r.IntN(1<<24), i)
	}
	return ndb, sb.String()
}

func benchMatcher(b *testing.B, nbody, nhash int) *Matcher {
	ndb, hdb := benchSigs(nbody, nhash)
	db := mustDB(b, ndb, hdb)
	m, err := Compile(db)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

func randomData(n int) []byte {
	data := make([]byte, n)
	rand.NewChaCha8([32]byte{7}).Read(data)
	return data
}

// BenchmarkScan measures one streaming pass over 64 MiB of random bytes
// with 1,000 body and 10,000 MD5 signatures (none of which has the
// sample's size, so no hash is computed).
func BenchmarkScan(b *testing.B) {
	m := benchMatcher(b, 1000, 10000)
	data := randomData(64 << 20)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		if got, err := m.Scan(context.Background(), bytes.NewReader(data), int64(len(data))); err != nil || len(got) != 0 {
			b.Fatalf("got %v, %v", got, err)
		}
	}
}

// BenchmarkScanHashed is BenchmarkScan with an MD5 signature for any
// size, which makes every scan hash the sample too.
func BenchmarkScanHashed(b *testing.B) {
	ndb, hdb := benchSigs(1000, 10000)
	db := mustDB(b, ndb, hdb+strings.Repeat("0", 32)+":*:Any\n")
	m, err := Compile(db)
	if err != nil {
		b.Fatal(err)
	}
	data := randomData(64 << 20)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		m.Scan(context.Background(), bytes.NewReader(data), int64(len(data)))
	}
}

// BenchmarkScanSmall measures many 16 KiB samples, where the per-scan
// set-up counts.
func BenchmarkScanSmall(b *testing.B) {
	m := benchMatcher(b, 1000, 10000)
	data := randomData(16 << 10)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		m.Scan(context.Background(), bytes.NewReader(data), int64(len(data)))
	}
}

func BenchmarkCompile(b *testing.B) {
	ndb, hdb := benchSigs(1000, 10000)
	for b.Loop() {
		db, _ := ParseNDB(strings.NewReader(ndb), "b.ndb")
		h, _ := ParseHDB(strings.NewReader(hdb), "b.hdb")
		db.Add(h)
		if _, err := Compile(db); err != nil {
			b.Fatal(err)
		}
	}
}
