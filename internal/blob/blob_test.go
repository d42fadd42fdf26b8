package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDir(t *testing.T) {
	ctx := context.Background()
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if n, err := d.Put(ctx, "01ABC", strings.NewReader("hello")); err != nil || n != 5 {
		t.Fatalf("put: got %d, %v", n, err)
	}
	r, err := d.Open(ctx, "01ABC")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != "hello" {
		t.Errorf("got %q, want hello", b)
	}
	fi, _ := os.Stat(d.root + "/01ABC")
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("got mode %v, want 0600", fi.Mode().Perm())
	}
	if err := d.Delete(ctx, "01ABC"); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, "01ABC"); err != nil {
		t.Errorf("second delete: %v", err)
	}
	if _, err := d.Open(ctx, "01ABC"); !errors.Is(err, ErrNotFound) {
		t.Errorf("got %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"", "../x", "a/b", strings.Repeat("a", 200)} {
		if _, err := d.Put(ctx, bad, strings.NewReader("")); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
	// A failed put leaves nothing behind.
	if _, err := d.Put(ctx, "broken", io.MultiReader(strings.NewReader("x"), errReader{})); err == nil {
		t.Error("put of a failing reader succeeded")
	}
	if ents, _ := os.ReadDir(d.root); len(ents) != 0 {
		t.Errorf("left %d files behind", len(ents))
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// content returns n bytes that differ from one position to the next, so
// that a misplaced chunk shows.
func content(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// tempsLeft fails t if Put left a temporary file in d.
func tempsLeft(t *testing.T, d *Dir) {
	t.Helper()
	ents, err := os.ReadDir(d.root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			t.Errorf("left temporary file %s", e.Name())
		}
	}
}

// TestPutSameContent: putting the bytes a blob already holds leaves its
// file as it is and only refreshes its modification time, while still
// reading the input to its end (callers hash it through a tee).
func TestPutSameContent(t *testing.T) {
	ctx := context.Background()
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := content(3*compareChunk + 17)
	if _, err := d.Put(ctx, "k", bytes.NewReader(c)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(d.root, "k")
	old := time.Now().Add(-40 * 24 * time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	start := time.Now()
	n, err := d.Put(ctx, "k", io.TeeReader(bytes.NewReader(c), h))
	if err != nil || n != int64(len(c)) {
		t.Fatalf("second put: got %d, %v; want %d, nil", n, err, len(c))
	}
	if got, want := h.Sum(nil), sha256.Sum256(c); !bytes.Equal(got, want[:]) {
		t.Error("the input was not read to its end")
	}
	after, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Error("the blob's file was replaced, want it left in place")
	}
	if after.ModTime().Before(start.Add(-time.Second)) {
		t.Errorf("got modification time %v, want about %v", after.ModTime(), start)
	}
	if after.Mode().Perm() != 0o600 {
		t.Errorf("got mode %v, want 0600", after.Mode().Perm())
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, c) {
		t.Error("the blob's bytes changed")
	}
	tempsLeft(t, d)
}

// TestPutOtherContent: putting other bytes under a key replaces the blob,
// wherever the two part.
func TestPutOtherContent(t *testing.T) {
	ctx := context.Background()
	c := content(3*compareChunk + 17)
	flip := func(i int) []byte {
		b := bytes.Clone(c)
		b[i] ^= 0xff
		return b
	}
	for _, tc := range []struct {
		name string
		next []byte
	}{
		{"empty", nil},
		{"prefix", c[:compareChunk+5]},
		{"one byte short", c[:len(c)-1]},
		{"one byte longer", append(bytes.Clone(c), 'x')},
		{"a chunk longer", append(bytes.Clone(c), content(compareChunk)...)},
		{"first byte", flip(0)},
		{"second chunk", flip(compareChunk + 100)},
		{"last byte", flip(len(c) - 1)},
		{"other", content(10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := NewDir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := d.Put(ctx, "k", bytes.NewReader(c)); err != nil {
				t.Fatal(err)
			}
			before, err := os.Stat(filepath.Join(d.root, "k"))
			if err != nil {
				t.Fatal(err)
			}
			n, err := d.Put(ctx, "k", bytes.NewReader(tc.next))
			if err != nil || n != int64(len(tc.next)) {
				t.Fatalf("got %d, %v; want %d, nil", n, err, len(tc.next))
			}
			r, err := d.Open(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, tc.next) {
				t.Errorf("got %d bytes, %v; want the %d put last", len(got), err, len(tc.next))
			}
			after, err := os.Stat(filepath.Join(d.root, "k"))
			if err != nil {
				t.Fatal(err)
			}
			if os.SameFile(before, after) {
				t.Error("the file was changed in place, want a new one renamed over it")
			}
			tempsLeft(t, d)
		})
	}
}

// TestPutSameContentFails: an input that fails, even after all the
// stored bytes, leaves the blob as it was, its age included: a cut-off
// upload is not taken for the content it began like.
func TestPutSameContentFails(t *testing.T) {
	c := content(2*compareChunk + 3)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		r    io.Reader
	}{
		{"cut off", context.Background(), io.MultiReader(bytes.NewReader(c[:compareChunk+1]), errReader{})},
		{"all then an error", context.Background(), io.MultiReader(bytes.NewReader(c), errReader{})},
		{"cancelled", cancelled, bytes.NewReader(c)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := NewDir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := d.Put(context.Background(), "k", bytes.NewReader(c)); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(d.root, "k")
			old := time.Now().Add(-40 * 24 * time.Hour).Truncate(time.Second)
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Put(tc.ctx, "k", tc.r); err == nil || !strings.HasPrefix(err.Error(), "blob: put k: ") {
				t.Errorf("got %v, want a blob: put k: error", err)
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.ModTime().Equal(old) {
				t.Errorf("got modification time %v, want %v (untouched)", fi.ModTime(), old)
			}
			if b, _ := os.ReadFile(p); !bytes.Equal(b, c) {
				t.Error("the blob's bytes changed")
			}
			tempsLeft(t, d)
		})
	}
}

// removeAtEOF reads r and removes path when r ends: a blob pruned while
// Put compared it.
type removeAtEOF struct {
	r    io.Reader
	path string
}

func (x *removeAtEOF) Read(b []byte) (int, error) {
	n, err := x.r.Read(b)
	if err == io.EOF {
		os.Remove(x.path)
	}
	return n, err
}

// TestPutSameContentPruned: a blob removed while Put found it equal is
// written again.
func TestPutSameContentPruned(t *testing.T) {
	ctx := context.Background()
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := content(compareChunk + 9)
	if _, err := d.Put(ctx, "k", bytes.NewReader(c)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(d.root, "k")
	n, err := d.Put(ctx, "k", &removeAtEOF{r: bytes.NewReader(c), path: p})
	if err != nil || n != int64(len(c)) {
		t.Fatalf("got %d, %v; want %d, nil", n, err, len(c))
	}
	if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, c) {
		t.Errorf("got %d bytes, %v; want the blob written again", len(b), err)
	}
	tempsLeft(t, d)
}
