package progress

import (
	"bytes"
	"testing"
	"time"
)

func TestBytes(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"}, {5 << 30, "5.0 GiB"}} {
		if got := Bytes(tc.n); got != tc.want {
			t.Errorf("Bytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestNilBarIsSilent(t *testing.T) {
	var b *Bar = New(nil, false)
	b.AddTotal(1)
	b.Done(10, false)
	b.TotalKnown()
	b.Stop()
}

func TestDraws(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, true)
	b.AddTotal(2)
	b.Done(1024, true)
	b.draw(b.start.Add(2 * time.Second))
	b.Stop()
	if !bytes.Contains(buf.Bytes(), []byte("1/2+ files")) || !bytes.Contains(buf.Bytes(), []byte("1 infected")) {
		t.Errorf("got %q", buf.String())
	}
}
