package spool

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestNew(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<12) // 64 KiB
	for _, tc := range []struct {
		name     string
		size     int
		opts     Options
		inMemory bool
		wantErr  error
	}{
		{"empty", 0, Options{}, true, nil},
		{"small in memory", 1000, Options{}, true, nil},
		{"exactly the memory limit", 4096, Options{MemLimit: 4096}, true, nil},
		{"one over the memory limit", 4097, Options{MemLimit: 4096}, false, nil},
		{"always a file", 10, Options{MemLimit: -1}, false, nil},
		{"exactly the max size", 5000, Options{MemLimit: 1000, MaxSize: 5000}, false, nil},
		{"over the max size, file", 5001, Options{MemLimit: 1000, MaxSize: 5000}, false, ErrTooLarge},
		{"over the max size, memory", 501, Options{MaxSize: 500}, true, ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.opts.Dir = dir
			in := data[:tc.size]
			b, err := New(context.Background(), bytes.NewReader(in), tc.opts)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got error %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				if ents, _ := os.ReadDir(dir); len(ents) != 0 {
					t.Errorf("a failed spool left %d files", len(ents))
				}
				return
			}
			if b.Size() != int64(tc.size) || b.SHA256() != sum(in) || b.InMemory() != tc.inMemory {
				t.Errorf("got size %d sha %s memory %v", b.Size(), b.SHA256(), b.InMemory())
			}
			for range 2 { // independent readers
				r, err := b.Open()
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(r)
				r.Close()
				if !bytes.Equal(got, in) {
					t.Errorf("read back %d bytes, want %d", len(got), len(in))
				}
			}
			p, err := b.Path()
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(p)
			if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != int64(tc.size) {
				t.Errorf("path %s: %v, mode %v", p, err, fi.Mode())
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("Close left %d files behind", len(ents))
			}
			if b.Close() != nil {
				t.Error("second Close failed")
			}
		})
	}
}

type failAfter struct{ n int }

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n := min(len(p), f.n)
	f.n -= n
	return n, nil
}

func TestNewFailures(t *testing.T) {
	dir := t.TempDir()
	if _, err := New(context.Background(), &failAfter{n: 10000}, Options{MemLimit: 100, Dir: dir}); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut-off input: got %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := New(ctx, bytes.NewReader([]byte("x")), Options{Dir: dir}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("failures left %d files", len(ents))
	}
}

func TestBytes(t *testing.T) {
	b := Bytes([]byte("hello"))
	s := b.Sample("h.txt")
	if s.Name != "h.txt" || s.Size != 5 || s.SHA256 != sum([]byte("hello")) {
		t.Errorf("got %+v", s)
	}
}

// TestFile: a file the caller owns is hashed and read in place when it is
// over the memory limit (no second file, left alone on Close), and read
// into memory when it is not.
func TestFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		size     int
		opts     Options
		inMemory bool
		err      error
	}{
		{"small: in memory", 100, Options{MemLimit: 1024}, true, nil},
		{"large: in place", 5000, Options{MemLimit: 1024}, false, nil},
		{"empty", 0, Options{MemLimit: 1024}, true, nil},
		{"over the size limit", 5000, Options{MemLimit: 1024, MaxSize: 4000}, false, ErrTooLarge},
		{"small over the size limit", 500, Options{MemLimit: 1024, MaxSize: 400}, true, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := bytes.Repeat([]byte("lazaret "), tt.size/8+1)[:tt.size]
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			tt.opts.Dir = dir
			b, err := File(context.Background(), path, tt.opts)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			sum := sha256.Sum256(data)
			if b.SHA256() != hex.EncodeToString(sum[:]) || b.Size() != int64(len(data)) {
				t.Errorf("got %s/%d, want %x/%d", b.SHA256(), b.Size(), sum, len(data))
			}
			if b.InMemory() != tt.inMemory {
				t.Errorf("InMemory = %v, want %v", b.InMemory(), tt.inMemory)
			}
			if !tt.inMemory {
				if p, _ := b.Path(); p != path {
					t.Errorf("Path = %q, want the file itself %q", p, path)
				}
			}
			r, err := b.Open()
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(r)
			r.Close()
			if !bytes.Equal(got, data) {
				t.Error("Open does not read the bytes")
			}
			entries, _ := os.ReadDir(dir)
			b.Close()
			if _, err := os.Stat(path); err != nil {
				t.Errorf("Close removed the caller's file: %v", err)
			}
			if after, _ := os.ReadDir(dir); len(after) != len(entries) || strings.Contains(fmt.Sprint(entries), ".spool") {
				t.Errorf("a spool file was made: %v", entries)
			}
		})
	}
	// A missing file reads as fs.ErrNotExist, which the pipeline turns
	// into reason not_found: a queued upload removed after blob.Dir.Path
	// found it is reported as gone, not as an I/O error.
	if _, err := File(context.Background(), filepath.Join(dir, "missing"), Options{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file: got %v, want fs.ErrNotExist", err)
	}
}

// TestNewMemoryBuffers reads samples around every buffer class boundary,
// with a right, a wrong and no size hint, in whole and one-byte reads:
// the bytes and hash must come out the same whichever buffers they went
// through, and a recycled buffer must not leak into the next sample.
func TestNewMemoryBuffers(t *testing.T) {
	rnd := make([]byte, DefaultMemLimit+2)
	for i := range rnd {
		rnd[i] = byte(i*7 + i>>8)
	}
	var sizes []int
	for _, c := range memClasses {
		sizes = append(sizes, c-2, c-1, c, c+1)
	}
	sizes = append(sizes, 0, 1, 100)
	for _, size := range sizes {
		in := rnd[:size]
		for _, hint := range []int64{0, int64(size), int64(size) / 2, int64(size) * 3, 1} {
			for _, oneByte := range []bool{false, true} {
				if oneByte && size > 70<<10 {
					continue // slow, and the small sizes cover the moves
				}
				name := fmt.Sprintf("size %d hint %d one-byte %v", size, hint, oneByte)
				var r io.Reader = bytes.NewReader(in)
				if oneByte {
					r = oneByteReader{r}
				}
				b, err := New(context.Background(), r, Options{Dir: t.TempDir(), SizeHint: hint})
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				wantMem := size <= DefaultMemLimit
				if b.Size() != int64(size) || b.SHA256() != sum(in) || b.InMemory() != wantMem {
					t.Fatalf("%s: got size %d memory %v, hash ok %v", name, b.Size(), b.InMemory(), b.SHA256() == sum(in))
				}
				rc, err := b.Open()
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(rc)
				rc.Close()
				if !bytes.Equal(got, in) {
					t.Fatalf("%s: read back differs", name)
				}
				b.Close()
				if wantMem {
					if _, err := b.Open(); err == nil {
						t.Fatalf("%s: Open after Close succeeded", name)
					}
				}
			}
		}
	}
}

type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

func BenchmarkNew16K(b *testing.B) {
	data := make([]byte, 16<<10)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		body, err := New(context.Background(), bytes.NewReader(data), Options{SizeHint: int64(len(data))})
		if err != nil {
			b.Fatal(err)
		}
		body.Close()
	}
}
