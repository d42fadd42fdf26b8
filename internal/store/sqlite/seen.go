package sqlite

import (
	"context"
	"encoding/hex"
	"sync/atomic"
)

// seenBits is the size of the seen filter: 2^24 bits, 2 MiB. With four
// bits a hash it answers "maybe" for content never seen about 0.2% of the
// time at a million cached verdicts and 14% at four million; a "maybe" only
// costs the query the filter saves.
const seenBits = 1 << 24

// seen is a Bloom filter of the SHA-256s that have a cached verdict in
// this store. Nearly every scan of new content asks the cache first and
// misses; the filter answers those misses without a query, which in
// SQLite is a read transaction and a b-tree walk on a connection whose
// page cache every commit invalidated.
//
// It can only say "no" wrongly for verdicts that another process wrote
// into the same file after this one loaded the filter (a `lazaret rescan`
// beside `serve`): such content is scanned again, which is the cost of a
// cache miss, never a wrong verdict.
type seen struct {
	bits  []atomic.Uint64
	ready atomic.Bool // loaded: until then every lookup queries
}

func newSeen() *seen { return &seen{bits: make([]atomic.Uint64, seenBits/64)} }

// positions derives the filter's four bit positions from a hex SHA-256,
// which is uniform already: no further hashing needed.
func positions(sum string) (p [4]uint32, ok bool) {
	if len(sum) != 64 {
		return p, false
	}
	var b [16]byte
	if _, err := hex.Decode(b[:], []byte(sum[:32])); err != nil {
		return p, false
	}
	for i := range p {
		p[i] = (uint32(b[4*i])<<24 | uint32(b[4*i+1])<<16 | uint32(b[4*i+2])<<8 | uint32(b[4*i+3])) % seenBits
	}
	return p, true
}

// add records sum.
func (f *seen) add(sum string) {
	p, ok := positions(sum)
	if !ok {
		return
	}
	for _, i := range p {
		f.bits[i/64].Or(1 << (i % 64))
	}
}

// absent reports whether sum certainly has no cached verdict.
func (f *seen) absent(sum string) bool {
	if !f.ready.Load() {
		return false
	}
	p, ok := positions(sum)
	if !ok {
		return false
	}
	for _, i := range p {
		if f.bits[i/64].Load()&(1<<(i%64)) == 0 {
			return true
		}
	}
	return false
}

// load adds every cached verdict's SHA-256, then marks the filter ready.
// It runs once, in the background, after Open: verdicts written meanwhile
// are added by their writes.
func (s *Store) loadSeen(ctx context.Context) {
	if err := s.scanSeen(ctx); err != nil {
		if ctx.Err() == nil {
			s.logger.Warn("sqlite: verdict filter not loaded; every lookup queries", "error", err)
		}
		return
	}
	s.seen.ready.Store(true)
}

func (s *Store) scanSeen(ctx context.Context) error {
	rows, err := s.reader.QueryContext(ctx, `SELECT sha256 FROM jobs WHERE engines_key <> ''`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var sum string
	for rows.Next() {
		if err := rows.Scan(&sum); err != nil {
			return err
		}
		s.seen.add(sum)
	}
	return rows.Err()
}
