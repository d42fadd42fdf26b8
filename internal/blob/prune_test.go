package blob

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// file is a file to lay out before a prune: its name, how long ago it
// was last written, and its size.
type file struct {
	name string
	age  time.Duration
	size int
}

// layout writes files into d's folder with their ages as modification
// times, counted back from now.
func layout(t *testing.T, d *Dir, now time.Time, files []file) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(d.root, f.name)
		if err := os.WriteFile(p, bytes.Repeat([]byte{'x'}, f.size), 0o600); err != nil {
			t.Fatal(err)
		}
		mod := now.Add(-f.age)
		if err := os.Chtimes(p, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
}

// left lists the names in d's folder, sorted.
func left(t *testing.T, d *Dir) []string {
	t.Helper()
	ents, err := os.ReadDir(d.root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

func TestPrune(t *testing.T) {
	const day = 24 * time.Hour
	now := time.Now()
	for _, tc := range []struct {
		name     string
		files    []file
		r        Retention
		wantLeft []string
		want     PruneStats
	}{
		{
			name:     "zero retention keeps everything",
			files:    []file{{"a", 400 * day, 10}, {"b", time.Minute, 20}},
			wantLeft: []string{"a", "b"},
			want:     PruneStats{Kept: 2, KeptBytes: 30},
		},
		{
			name:     "max age removes the old ones",
			files:    []file{{"old", 31 * day, 10}, {"new", 29 * day, 20}, {"fresh", 0, 40}},
			r:        Retention{MaxAge: 30 * day},
			wantLeft: []string{"fresh", "new"},
			want:     PruneStats{Removed: 1, RemovedBytes: 10, Kept: 2, KeptBytes: 60},
		},
		{
			name:     "max size removes the least recently kept first",
			files:    []file{{"a", 3 * time.Hour, 100}, {"b", 2 * time.Hour, 100}, {"c", time.Hour, 100}, {"d", 0, 100}},
			r:        Retention{MaxSize: 250},
			wantLeft: []string{"c", "d"},
			want:     PruneStats{Removed: 2, RemovedBytes: 200, Kept: 2, KeptBytes: 200},
		},
		{
			name:     "under the cap nothing goes",
			files:    []file{{"a", 3 * day, 100}, {"b", 0, 100}},
			r:        Retention{MaxSize: 200},
			wantLeft: []string{"a", "b"},
			want:     PruneStats{Kept: 2, KeptBytes: 200},
		},
		{
			// Oldest first, whatever the sizes: the older small blob
			// goes, then the new one that fits no cap.
			name:     "a blob over the cap goes too",
			files:    []file{{"small", time.Hour, 10}, {"huge", 0, 1000}},
			r:        Retention{MaxSize: 500},
			wantLeft: nil,
			want:     PruneStats{Removed: 2, RemovedBytes: 1010},
		},
		{
			name:     "age first, then size",
			files:    []file{{"ancient", 90 * day, 1000}, {"a", 2 * day, 100}, {"b", day, 100}, {"c", 0, 100}},
			r:        Retention{MaxAge: 30 * day, MaxSize: 200},
			wantLeft: []string{"b", "c"},
			want:     PruneStats{Removed: 2, RemovedBytes: 1100, Kept: 2, KeptBytes: 200},
		},
		{
			name: "leftovers of interrupted puts go, puts in progress stay",
			files: []file{{".put-123", 2 * time.Hour, 50}, {".put-456", time.Minute, 50},
				{"a", 0, 10}},
			wantLeft: []string{".put-456", "a"},
			want:     PruneStats{Removed: 1, RemovedBytes: 50, Kept: 1, KeptBytes: 10},
		},
		{
			name: "files that are not blobs are left alone",
			files: []file{{"README.txt", 400 * day, 10}, {"has space", 400 * day, 10},
				{".hidden", 400 * day, 10}, {"old", 400 * day, 10}},
			r:        Retention{MaxAge: day, MaxSize: 1},
			wantLeft: []string{".hidden", "README.txt", "has space"},
			want:     PruneStats{Removed: 1, RemovedBytes: 10},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := NewDir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			layout(t, d, now, tc.files)
			got, err := d.Prune(context.Background(), tc.r, now)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if names := left(t, d); !slices.Equal(names, tc.wantLeft) {
				t.Errorf("left %v, want %v", names, tc.wantLeft)
			}
		})
	}
}

func TestPruneLeavesFolders(t *testing.T) {
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(d.root, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-400 * 24 * time.Hour)
	if err := os.Chtimes(sub, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Prune(context.Background(), Retention{MaxAge: time.Hour}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if names := left(t, d); !slices.Equal(names, []string{"sub"}) {
		t.Errorf("left %v, want the folder", names)
	}
}

// TestPutRefreshesAge: keeping the same content again makes it young
// again, so content that keeps arriving is never pruned.
func TestPutRefreshesAge(t *testing.T) {
	ctx := context.Background()
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	layout(t, d, now, []file{{"again", 40 * 24 * time.Hour, 5}, {"once", 40 * 24 * time.Hour, 5}})
	if _, err := d.Put(ctx, "again", strings.NewReader("xxxxx")); err != nil {
		t.Fatal(err)
	}
	st, err := d.Prune(ctx, Retention{MaxAge: 30 * 24 * time.Hour}, now.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if names := left(t, d); !slices.Equal(names, []string{"again"}) {
		t.Errorf("left %v, want only the blob put again", names)
	}
	if st.Removed != 1 || st.Kept != 1 {
		t.Errorf("got %+v, want 1 removed and 1 kept", st)
	}
}

// TestPruneSparesABlobPutSinceListed: removal checks the modification
// time again, so a blob kept again after the listing stays.
func TestPruneSparesABlobPutSinceListed(t *testing.T) {
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	layout(t, d, now, []file{{"k", 40 * 24 * time.Hour, 5}})
	listed := now.Add(-40 * 24 * time.Hour)
	if _, err := d.Put(context.Background(), "k", strings.NewReader("xxxxx")); err != nil {
		t.Fatal(err)
	}
	removed, err := d.removeUnchanged("k", listed)
	if err != nil || removed {
		t.Errorf("got removed=%t, %v; want false, nil", removed, err)
	}
	if names := left(t, d); !slices.Equal(names, []string{"k"}) {
		t.Errorf("left %v, want k", names)
	}
	if removed, err := d.removeUnchanged("gone", listed); err != nil || removed {
		t.Errorf("missing file: got removed=%t, %v; want false, nil", removed, err)
	}
}

func TestPruneErrors(t *testing.T) {
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []Retention{{MaxAge: -time.Hour}, {MaxSize: -1}} {
		if _, err := d.Prune(context.Background(), r, time.Now()); err == nil {
			t.Errorf("%+v: got no error", r)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Prune(ctx, Retention{MaxAge: time.Hour}, time.Now()); err == nil {
		t.Error("cancelled context: got no error")
	}
	if err := os.RemoveAll(d.root); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Prune(context.Background(), Retention{MaxAge: time.Hour}, time.Now()); err == nil || !strings.Contains(err.Error(), "blob: prune") {
		t.Errorf("missing folder: got %v, want a blob: prune error", err)
	}
}

// TestPruneEvery: the first round runs at once, and the loop ends with
// its context.
func TestPruneEvery(t *testing.T) {
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	layout(t, d, time.Now(), []file{{"old", 48 * time.Hour, 1}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.PruneEvery(ctx, Retention{MaxAge: time.Hour}, time.Hour, nil)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(left(t, d)) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first round did not prune within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
}
