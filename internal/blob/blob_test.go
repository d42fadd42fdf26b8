package blob

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
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
