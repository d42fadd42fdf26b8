package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store"
)

// Bench runs the store benchmarks: a job's life as a synchronous scan
// stores it (CreateJob running, UpdateJob to done) and a verdict cache
// hit, each serially and in parallel. open must return a new, empty store
// and close it at cleanup.
func Bench(b *testing.B, open func(tb testing.TB) store.Store) {
	b.Run("CreateUpdateDone", func(b *testing.B) {
		s := open(b)
		b.ReportAllocs()
		for b.Loop() {
			createUpdateDone(b, s)
		}
	})
	b.Run("CreateUpdateDoneParallel", func(b *testing.B) {
		s := open(b)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				createUpdateDone(b, s)
			}
		})
	})
	b.Run("LookupVerdictHit", func(b *testing.B) {
		s, sha, key := verdictFixture(b, open)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.LookupVerdict(ctx, sha, key); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("LookupVerdictHitParallel", func(b *testing.B) {
		s, sha, key := verdictFixture(b, open)
		ctx := context.Background()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.LookupVerdict(ctx, sha, key); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func createUpdateDone(b *testing.B, s store.Store) {
	ctx := context.Background()
	now := time.Now()
	job := NewJob(scan.Running, now)
	job.Source = scan.Source{Kind: "s3", Bucket: "uploads", Key: "a/eicar.com"}
	if err := s.CreateJob(ctx, job); err != nil {
		b.Error(err)
		return
	}
	job.Status, job.Verdict = scan.Done, scan.Infected
	job.Findings = []scan.Finding{{Engine: "clamav", Signature: "Eicar-Test-Signature"}}
	job.Engines = []scan.EngineRun{{Name: "clamav", Version: "ClamAV 1.4.6/27480", Verdict: scan.Infected, DurationMS: 3}}
	job.Actions = []string{"tagged", "deleted", "notified"}
	job.FinishedAt = &now
	if err := s.UpdateJob(ctx, job, scan.Running); err != nil {
		b.Error(err)
	}
}

func verdictFixture(b *testing.B, open func(tb testing.TB) store.Store) (s store.Store, sha, key string) {
	s = open(b)
	sha = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
	key = scan.EnginesKey([]scan.EngineVersion{{Name: "clamav", Version: "ClamAV 1.4.6/27480"}})
	err := s.PutVerdict(context.Background(), &scan.CachedVerdict{
		SHA256: sha, EnginesKey: key, Verdict: scan.Infected,
		Findings: []scan.Finding{{Engine: "clamav", Signature: "Eicar-Test-Signature"}},
		Engines:  []scan.EngineRun{{Name: "clamav", Version: "ClamAV 1.4.6/27480", Verdict: scan.Infected, DurationMS: 3}},
		JobID:    NewID(time.Now()), CreatedAt: time.Now(),
	})
	if err != nil {
		b.Fatal(err)
	}
	return s, sha, key
}
