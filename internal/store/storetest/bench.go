package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/lazaret/lazaret/internal/scan"
	"github.com/lazaret/lazaret/internal/store"
)

// Bench runs the store benchmarks: a job's life as a queued job stores it
// (CreateJob running, UpdateJob to done), a new job saved with its verdict
// as a synchronous scan stores it, and a verdict cache hit. open must return a new, empty store
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
	// What a synchronous scan writes: a new clean job and its cached
	// verdict, in one SaveJob, for fresh content each time.
	b.Run("SaveJobNewParallel", func(b *testing.B) {
		s := open(b)
		b.ReportAllocs()
		b.SetParallelism(2) // 2 x GOMAXPROCS writers, as /v1/scan at c=4
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				saveNew(b, s)
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
	now := time.Now()
	job := NewJob(scan.StatusNew, now)
	job.SHA256, job.Status, job.Verdict, job.FinishedAt = sha, scan.Done, scan.Infected, &now
	job.Findings = []scan.Finding{{Engine: "clamav", Signature: "Eicar-Test-Signature"}}
	job.Engines = []scan.EngineRun{{Name: "clamav", Version: "ClamAV 1.4.6/27480", Verdict: scan.Infected, DurationMS: 3}}
	if err := s.SaveJob(context.Background(), job, scan.StatusNew, VerdictOf(job, key)); err != nil {
		b.Fatal(err)
	}
	return s, sha, key
}

func saveNew(b *testing.B, s store.Store) {
	ctx := context.Background()
	now := time.Now()
	job := NewJob(scan.StatusNew, now)
	var sum [32]byte
	rand.Read(sum[:])
	job.SHA256 = hex.EncodeToString(sum[:])
	job.Status, job.Verdict, job.FinishedAt = scan.Done, scan.Clean, &now
	job.Engines = []scan.EngineRun{{Name: "clamav", Version: "ClamAV 1.4.6/27480", Verdict: scan.Clean, DurationMS: 1}}
	cv := &scan.CachedVerdict{SHA256: job.SHA256, EnginesKey: "clamav=ClamAV 1.4.6/27480", Verdict: scan.Clean,
		Engines: job.Engines, JobID: job.ID, CreatedAt: now}
	if err := s.SaveJob(ctx, job, scan.StatusNew, cv); err != nil {
		b.Error(err)
	}
}
