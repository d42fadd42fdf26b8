package objstore

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/lazaret/lazaret/internal/scan"
)

var finished = time.Date(2026, 11, 23, 10, 0, 0, 4e6, time.UTC)

// doneJob returns a finished job for an object with the given ETag;
// infected jobs get the signatures given, or EICAR's.
func doneJob(v scan.Verdict, etag string, sigs ...string) *scan.Job {
	j := &scan.Job{
		ID: "01JD6Q3K8M4Z7X2V9B1N5T0RCE", Status: scan.Done, Verdict: v,
		Source:     scan.Source{Kind: "s3", ETag: etag},
		FinishedAt: &finished,
	}
	if v == scan.Infected && len(sigs) == 0 {
		sigs = []string{"Eicar-Test-Signature"}
	}
	for _, s := range sigs {
		j.Findings = append(j.Findings, scan.Finding{Engine: "clamav", Signature: s})
	}
	return j
}

func exists(t *testing.T, s *Store, bucket, key string) bool {
	t.Helper()
	_, err := s.Stat(t.Context(), bucket, key, "")
	if err != nil && !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func TestTagMergesWithUserTags(t *testing.T) {
	t.Parallel()
	s := newStore(t, Config{})
	ctx := t.Context()
	bucket := newBucket(t, s, false)
	user := map[string]string{"owner": "alice", "project": "x-1", "Class": "a b"}
	info := put(t, s, bucket, "a.txt", "hello", minio.PutObjectOptions{UserTags: user})

	j := doneJob(scan.Infected, info.ETag, "Win.Test (x)!", "Second")
	if err := s.Tag(ctx, bucket, "a.txt", "", j); err != nil {
		t.Fatal(err)
	}
	want := with(user,
		"lazaret-status", "infected",
		"lazaret-signature", "Win.Test _x__",
		"lazaret-scanned-at", "2026-11-23T10:00:00Z")
	if got := objectTags(t, s, bucket, "a.txt", ""); !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}

	// A later clean verdict replaces ours and keeps the user's.
	if err := s.Tag(ctx, bucket, "a.txt", "", doneJob(scan.Clean, info.ETag)); err != nil {
		t.Fatal(err)
	}
	want = with(user, "lazaret-status", "clean", "lazaret-scanned-at", "2026-11-23T10:00:00Z")
	if got := objectTags(t, s, bucket, "a.txt", ""); !maps.Equal(got, want) {
		t.Errorf("after the clean verdict: got %v, want %v", got, want)
	}

	// bucket-av-scanner's mode names the status tag "scanned".
	compat := newStore(t, Config{TagKey: "scanned"})
	if err := compat.Tag(ctx, bucket, "a.txt", "", doneJob(scan.Clean, info.ETag)); err != nil {
		t.Fatal(err)
	}
	if got := objectTags(t, s, bucket, "a.txt", "")["scanned"]; got != "clean" {
		t.Errorf("got scanned=%q, want clean", got)
	}
}

func TestTagBudget(t *testing.T) {
	t.Parallel()
	s := newStore(t, Config{})
	ctx := t.Context()
	bucket := newBucket(t, s, false)
	tests := []struct {
		users   int
		want    []string // lazaret's tags written
		wantErr error
	}{
		{7, []string{"lazaret-status", "lazaret-signature", "lazaret-scanned-at"}, nil},
		{8, []string{"lazaret-status", "lazaret-signature"}, nil},
		{9, []string{"lazaret-status"}, nil},
		{10, nil, ErrTagBudget},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d user tags", tt.users), func(t *testing.T) {
			key := fmt.Sprintf("budget-%d", tt.users)
			info := put(t, s, bucket, key, "x", minio.PutObjectOptions{UserTags: userTags(tt.users)})
			err := s.Tag(ctx, bucket, key, "", doneJob(scan.Infected, info.ETag))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			got := objectTags(t, s, bucket, key, "")
			for k := range userTags(tt.users) {
				if _, ok := got[k]; !ok {
					t.Errorf("user tag %s lost", k)
				}
			}
			var ours []string
			for k := range got {
				if _, user := userTags(tt.users)[k]; !user {
					ours = append(ours, k)
				}
			}
			slices.Sort(ours)
			want := slices.Sorted(slices.Values(tt.want))
			if !slices.Equal(ours, want) {
				t.Errorf("got lazaret tags %v, want %v", ours, want)
			}
		})
	}
}

func TestTagPending(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, Config{TagPending: true})
	bucket := newBucket(t, s, false)
	// The uploader tries to pre-label its own upload as clean.
	info := put(t, s, bucket, "up.bin", "x", minio.PutObjectOptions{
		UserTags: map[string]string{"owner": "bob", "lazaret-status": "clean", "lazaret-signature": "fake"},
	})
	if err := s.TagPending(ctx, bucket, "up.bin", ""); err != nil {
		t.Fatal(err)
	}
	if got, want := objectTags(t, s, bucket, "up.bin", ""), map[string]string{"owner": "bob", "lazaret-status": "pending"}; !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if err := s.Tag(ctx, bucket, "up.bin", "", doneJob(scan.Clean, info.ETag)); err != nil {
		t.Fatal(err)
	}
	if got := objectTags(t, s, bucket, "up.bin", "")["lazaret-status"]; got != "clean" {
		t.Errorf("got status %q after the verdict, want clean", got)
	}

	// Off, TagPending writes nothing.
	off := newStore(t, Config{})
	put(t, s, bucket, "quiet.bin", "x", minio.PutObjectOptions{})
	if err := off.TagPending(ctx, bucket, "quiet.bin", ""); err != nil {
		t.Fatal(err)
	}
	if got := objectTags(t, s, bucket, "quiet.bin", ""); len(got) != 0 {
		t.Errorf("got tags %v, want none", got)
	}
	if err := s.TagPending(ctx, bucket, "missing.bin", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing object: got %v, want ErrNotFound", err)
	}
}

func TestApply(t *testing.T) {
	t.Parallel()
	const key = "incoming/a b+c ü.exe"
	userTagSet := map[string]string{"owner": "alice", "dept": "ops", "ticket": "T-1"}
	tests := []struct {
		name    string
		cfg     Config
		verdict scan.Verdict
		want    []string // actions of the first run
		again   []string // actions of the second run
		stays   bool     // the original is still there afterwards
		status  string   // its status tag, when it stays; "" for no tags
	}{
		{"clean", Config{}, scan.Clean, []string{"tagged"}, []string{"tagged"}, true, "clean"},
		{"infected, delete", Config{OnInfected: OnInfectedDelete}, scan.Infected,
			[]string{"tagged", "deleted"}, []string{"deleted"}, false, ""},
		{"infected, quarantine", Config{OnInfected: OnInfectedQuarantine}, scan.Infected,
			[]string{"tagged", "quarantined"}, []string{"quarantined"}, false, ""},
		{"infected, tag only", Config{OnInfected: OnInfectedTag}, scan.Infected,
			[]string{"tagged"}, []string{"tagged"}, true, "infected"},
		{"error never deletes", Config{OnInfected: OnInfectedDelete}, scan.Error,
			[]string{"tagged"}, []string{"tagged"}, true, "error"},
		{"skipped never deletes", Config{OnInfected: OnInfectedQuarantine}, scan.Skipped,
			[]string{"tagged"}, []string{"tagged"}, true, "skipped"},
		{"no verdict reads as error", Config{}, "", []string{"tagged"}, []string{"tagged"}, true, "error"},
		{"infected, delete, tags off", Config{OnInfected: OnInfectedDelete, DisableTags: true}, scan.Infected,
			[]string{"deleted"}, []string{"deleted"}, false, ""},
		{"clean, tags off", Config{DisableTags: true}, scan.Clean, nil, nil, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			admin := newStore(t, Config{})
			bucket := newBucket(t, admin, false)
			qbucket := newBucket(t, admin, true) // versioned: counts copies
			tt.cfg.QuarantineBucket, tt.cfg.QuarantinePrefix = qbucket, "q/"+bucket+"/"
			s := newStore(t, tt.cfg)
			info := put(t, s, bucket, key, "sample bytes", minio.PutObjectOptions{
				ContentType:  "application/x-msdownload",
				UserMetadata: map[string]string{"uploader": "alice"},
				UserTags:     userTagSet,
			})
			job := doneJob(tt.verdict, info.ETag)

			var state []string
			for run, want := range [][]string{tt.want, tt.again} {
				got, err := s.Apply(ctx, bucket, key, "", job)
				if err != nil {
					t.Fatalf("run %d: %v", run+1, err)
				}
				if !slices.Equal(got, want) {
					t.Errorf("run %d: got actions %v, want %v", run+1, got, want)
				}
				st := describe(t, s, bucket, key, qbucket, tt.cfg.QuarantinePrefix+key)
				if run == 1 && !slices.Equal(st, state) {
					t.Errorf("state after the second run %v, after the first %v", st, state)
				}
				state = st
			}

			if got := exists(t, s, bucket, key); got != tt.stays {
				t.Fatalf("original exists: %v, want %v", got, tt.stays)
			}
			if tt.stays {
				tags := objectTags(t, s, bucket, key, "")
				wantTags := maps.Clone(userTagSet)
				if tt.status != "" {
					wantTags["lazaret-status"] = tt.status
					wantTags["lazaret-scanned-at"] = "2026-11-23T10:00:00Z"
					if tt.verdict == scan.Infected {
						wantTags["lazaret-signature"] = "Eicar-Test-Signature"
					}
				}
				if !maps.Equal(tags, wantTags) {
					t.Errorf("tags %v, want %v", tags, wantTags)
				}
			}
			qkey := tt.cfg.QuarantinePrefix + key
			quarantined := exists(t, s, qbucket, qkey)
			if want := slices.Contains(tt.want, "quarantined"); quarantined != want {
				t.Fatalf("quarantine copy exists: %v, want %v", quarantined, want)
			}
			if quarantined {
				checkQuarantineCopy(t, s, qbucket, qkey, "sample bytes", userTagSet)
			}
		})
	}
}

// checkQuarantineCopy checks the one copy in the (versioned) quarantine
// bucket: bytes, metadata, the user's tags and lazaret's.
func checkQuarantineCopy(t *testing.T, s *Store, qbucket, qkey, body string, user map[string]string) {
	t.Helper()
	ctx := t.Context()
	rc, qinfo, err := s.Open(ctx, qbucket, qkey, "", "")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != body {
		t.Errorf("quarantine copy holds %q, want %q", b, body)
	}
	if qinfo.ContentType != "application/x-msdownload" || qinfo.Metadata["Uploader"] != "alice" {
		t.Errorf("quarantine copy: content type %q, metadata %v; want the original's", qinfo.ContentType, qinfo.Metadata)
	}
	want := with(user,
		"lazaret-status", "infected",
		"lazaret-signature", "Eicar-Test-Signature",
		"lazaret-scanned-at", "2026-11-23T10:00:00Z")
	if got := objectTags(t, s, qbucket, qkey, ""); !maps.Equal(got, want) {
		t.Errorf("quarantine copy tags %v, want %v", got, want)
	}
	if n := versions(t, s, qbucket, qkey); n != 1 {
		t.Errorf("quarantine bucket holds %d versions of the copy, want 1", n)
	}
}

// versions counts the versions of key in a versioned bucket.
func versions(t *testing.T, s *Store, bucket, key string) int {
	t.Helper()
	n := 0
	for o := range s.client.ListObjects(t.Context(), bucket, minio.ListObjectsOptions{Prefix: key, WithVersions: true, Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		if o.Key == key {
			n++
		}
	}
	return n
}

// describe returns what is observable about the original and the
// quarantine copy: existence, ETag and tags.
func describe(t *testing.T, s *Store, bucket, key, qbucket, qkey string) []string {
	t.Helper()
	var out []string
	for _, o := range [][2]string{{bucket, key}, {qbucket, qkey}} {
		info, err := s.Stat(t.Context(), o[0], o[1], "")
		if errors.Is(err, ErrNotFound) {
			out = append(out, o[0]+": absent")
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s: %s %v", o[0], info.ETag, objectTags(t, s, o[0], o[1], "")))
	}
	return out
}

func TestApplyChangedObject(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	for _, cfg := range []Config{
		{OnInfected: OnInfectedDelete},
		{OnInfected: OnInfectedDelete, DisableTags: true},
		{OnInfected: OnInfectedQuarantine, QuarantineBucket: "set-below"},
	} {
		t.Run(fmt.Sprintf("%s tags=%v", cfg.OnInfected, !cfg.DisableTags), func(t *testing.T) {
			admin := newStore(t, Config{})
			bucket := newBucket(t, admin, false)
			if cfg.QuarantineBucket != "" {
				cfg.QuarantineBucket = newBucket(t, admin, false)
			}
			s := newStore(t, cfg)
			old := put(t, s, bucket, "k", "infected content", minio.PutObjectOptions{})
			put(t, s, bucket, "k", "new clean content", minio.PutObjectOptions{})
			actions, err := s.Apply(ctx, bucket, "k", "", doneJob(scan.Infected, old.ETag))
			if !errors.Is(err, ErrChanged) || len(actions) != 0 {
				t.Fatalf("got %v, %v; want no actions and ErrChanged", actions, err)
			}
			if !exists(t, s, bucket, "k") {
				t.Fatal("the new content was deleted for the old content's verdict")
			}
			if got := objectTags(t, s, bucket, "k", ""); len(got) != 0 {
				t.Errorf("the new content got tags %v", got)
			}
		})
	}
}

func TestApplyReportsTagBudgetButStillDeletes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, Config{OnInfected: OnInfectedDelete})
	bucket := newBucket(t, s, false)
	info := put(t, s, bucket, "full", "x", minio.PutObjectOptions{UserTags: userTags(10)})
	actions, err := s.Apply(ctx, bucket, "full", "", doneJob(scan.Infected, info.ETag))
	if !errors.Is(err, ErrTagBudget) {
		t.Errorf("got %v, want ErrTagBudget", err)
	}
	if !slices.Equal(actions, []string{"deleted"}) || exists(t, s, bucket, "full") {
		t.Errorf("got actions %v, want the object deleted anyway", actions)
	}

	// A clean object with ten tags: reported, untouched.
	info = put(t, s, bucket, "full-clean", "y", minio.PutObjectOptions{UserTags: userTags(10)})
	actions, err = s.Apply(ctx, bucket, "full-clean", "", doneJob(scan.Clean, info.ETag))
	if !errors.Is(err, ErrTagBudget) || len(actions) != 0 || !exists(t, s, bucket, "full-clean") {
		t.Errorf("got %v, %v; want ErrTagBudget, no actions, the object kept", actions, err)
	}
}

func TestApplyRefusesUnfinishedJob(t *testing.T) {
	t.Parallel()
	s := newStore(t, Config{})
	bucket := newBucket(t, s, false)
	info := put(t, s, bucket, "k", "x", minio.PutObjectOptions{})
	j := doneJob(scan.Infected, info.ETag)
	j.Status = scan.Running
	if actions, err := s.Apply(t.Context(), bucket, "k", "", j); err == nil || len(actions) != 0 {
		t.Errorf("got %v, %v; want an error and nothing done", actions, err)
	}
	if _, err := s.Apply(t.Context(), bucket, "k", "", nil); err == nil {
		t.Error("nil job accepted")
	}
	if !exists(t, s, bucket, "k") {
		t.Error("object deleted")
	}
}

func TestQuarantineRerun(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	admin := newStore(t, Config{})
	bucket := newBucket(t, admin, false)
	qbucket := newBucket(t, admin, true)
	s := newStore(t, Config{OnInfected: OnInfectedQuarantine, QuarantineBucket: qbucket, QuarantinePrefix: "infected/"})
	user := map[string]string{"owner": "carol"}
	opts := minio.PutObjectOptions{ContentType: "application/x-msdownload", UserMetadata: map[string]string{"uploader": "alice"}, UserTags: user}

	t.Run("crash between copy and delete", func(t *testing.T) {
		info := put(t, s, bucket, "a.exe", "payload", opts)
		job := doneJob(scan.Infected, info.ETag)
		// The first run got as far as the copy.
		if err := s.copyToQuarantine(ctx, info, "", job, qbucket, "infected/a.exe"); err != nil {
			t.Fatal(err)
		}
		if err := s.Quarantine(ctx, bucket, "a.exe", "", job); err != nil {
			t.Fatal(err)
		}
		if exists(t, s, bucket, "a.exe") {
			t.Error("original still there")
		}
		checkQuarantineCopy(t, s, qbucket, "infected/a.exe", "payload", user)
	})
	t.Run("original already deleted", func(t *testing.T) {
		info := put(t, s, bucket, "b.exe", "payload", opts)
		job := doneJob(scan.Infected, info.ETag)
		if err := s.Quarantine(ctx, bucket, "b.exe", "", job); err != nil {
			t.Fatal(err)
		}
		if err := s.Quarantine(ctx, bucket, "b.exe", "", job); err != nil {
			t.Errorf("second run: %v", err)
		}
		checkQuarantineCopy(t, s, qbucket, "infected/b.exe", "payload", user)
	})
	t.Run("neither original nor copy", func(t *testing.T) {
		if err := s.Quarantine(ctx, bucket, "never.exe", "", doneJob(scan.Infected, "")); !errors.Is(err, ErrNotFound) {
			t.Errorf("got %v, want ErrNotFound", err)
		}
	})
	t.Run("quarantine bucket missing", func(t *testing.T) {
		// The infected object must stay flagged as a failure to retry,
		// never read as gone (skipped), and never be deleted uncopied.
		missing := newStore(t, Config{OnInfected: OnInfectedQuarantine, QuarantineBucket: "no-such-quarantine-bucket", QuarantinePrefix: "infected/"})
		info := put(t, s, bucket, "d.exe", "payload", opts)
		_, err := missing.Apply(ctx, bucket, "d.exe", "", doneJob(scan.Infected, info.ETag))
		if err == nil || errors.Is(err, ErrNotFound) {
			t.Fatalf("got %v, want an error that is not ErrNotFound", err)
		}
		if !exists(t, s, bucket, "d.exe") {
			t.Error("original deleted without a quarantine copy")
		}
	})
	t.Run("into a prefix of the same bucket", func(t *testing.T) {
		same := newStore(t, Config{OnInfected: OnInfectedQuarantine, QuarantineBucket: bucket, QuarantinePrefix: "quarantine/"})
		info := put(t, s, bucket, "c.exe", "payload", opts)
		actions, err := same.Apply(ctx, bucket, "c.exe", "", doneJob(scan.Infected, info.ETag))
		if err != nil || !slices.Equal(actions, []string{"tagged", "quarantined"}) {
			t.Fatalf("got %v, %v", actions, err)
		}
		if exists(t, s, bucket, "c.exe") || !exists(t, s, bucket, "quarantine/c.exe") {
			t.Error("not moved under quarantine/")
		}
		// Quarantining what already sits in the quarantine area would
		// copy it onto itself and delete it.
		if err := same.Quarantine(ctx, bucket, "quarantine/c.exe", "", nil); err == nil {
			t.Error("quarantine of a quarantined object accepted")
		}
		if !exists(t, s, bucket, "quarantine/c.exe") {
			t.Error("quarantined object lost")
		}
	})
	t.Run("multipart copy of a large object", func(t *testing.T) {
		// Objects over 5 GiB take the multipart copy; a lowered limit
		// sends a small one down the same path.
		mp := newStore(t, s.cfg)
		mp.maxSingleCopy = 0
		info := put(t, s, bucket, "e.exe", "payload", opts)
		if err := mp.Quarantine(ctx, bucket, "e.exe", "", doneJob(scan.Infected, info.ETag)); err != nil {
			t.Fatal(err)
		}
		if exists(t, s, bucket, "e.exe") {
			t.Error("original still there")
		}
		checkQuarantineCopy(t, s, qbucket, "infected/e.exe", "payload", user)
	})
	t.Run("versioned source", func(t *testing.T) {
		vbucket := newBucket(t, admin, true)
		v1 := put(t, s, vbucket, "d.exe", "infected v1", opts)
		v2 := put(t, s, vbucket, "d.exe", "clean v2", opts)
		actions, err := s.Apply(ctx, vbucket, "d.exe", v1.VersionID, doneJob(scan.Infected, v1.ETag))
		if err != nil || !slices.Equal(actions, []string{"tagged", "quarantined"}) {
			t.Fatalf("got %v, %v", actions, err)
		}
		if _, err := s.Stat(ctx, vbucket, "d.exe", v1.VersionID); !errors.Is(err, ErrNotFound) {
			t.Errorf("infected version: got %v, want it gone", err)
		}
		cur, err := s.Stat(ctx, vbucket, "d.exe", "")
		if err != nil || cur.VersionID != v2.VersionID {
			t.Errorf("current version: got %+v, %v; want %s untouched", cur, err, v2.VersionID)
		}
		rc, _, err := s.Open(ctx, qbucket, "infected/d.exe", "", "")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != "infected v1" {
			t.Errorf("quarantined %q, want the infected version", b)
		}
	})
}
