package builtin

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/testenv"
)

func TestSignaturesUpdated(t *testing.T) {
	ctx := context.Background()
	e, err := New(Config{Name: "b"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tm, err := e.SignaturesUpdated(ctx); err != nil || !tm.IsZero() {
		t.Errorf("no folder: got %v, %v; want zero", tm, err)
	}
	dir := t.TempDir()
	if err := testenv.WriteSignatures(dir); err != nil {
		t.Fatal(err)
	}
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, name := range []string{"lazaret-test.hdb", "lazaret-test.hsb", "lazaret-test.ndb"} {
		os.Chtimes(filepath.Join(dir, name), when, when)
	}
	e, err = New(Config{Name: "b", SignaturesDir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tm, err := e.SignaturesUpdated(ctx); err != nil || !tm.Equal(when) {
		t.Errorf("got %v, %v; want %v", tm, err, when)
	}
}
