package clamsig

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"sync"
)

// ErrSizeMismatch is returned by Scanner.Finish when the bytes fed differ
// in number from the size the Scanner was created with: the hash and EOF
// signatures were chosen for that size, so the result would be wrong.
var ErrSizeMismatch = errors.New("clamsig: stream length differs from the declared size")

// ErrTooLarge is returned by Compile when a DB has more body signatures
// than MaxBodySignatures.
var ErrTooLarge = errors.New("clamsig: too many body signatures")

// Match is a signature that matched.
type Match struct {
	Name string
	// Source is the "file:line" the signature came from.
	Source string
}

type bodySig struct {
	name, source string
	off          Offset
	parts        []part
	chain        int32 // index of its first part in Scanner.best (multi-part only)
}

type hashKey struct {
	algo HashAlgo
	sum  string
}

// Matcher matches a compiled set of signatures. It is immutable and safe
// for concurrent use; every scan gets its own Scanner.
type Matcher struct {
	ix     *anchorIndex
	bodies []bodySig
	nchain int
	// hist is the most bytes a verification looks at before an anchor's
	// start, look the most from its start on (at least the four bytes the
	// index reads at every position).
	hist, look int

	hashes  map[hashKey][]*HashSig
	sizes   [3]map[int64]bool
	anySize [3]bool

	pool sync.Pool // *[]byte buffers of defaultChunk+hist+look
}

// Compile builds a Matcher from db. The DB must not be changed afterwards.
func Compile(db *DB) (*Matcher, error) {
	if len(db.Bodies) > MaxBodySignatures {
		return nil, fmt.Errorf("%w: %d body signatures, at most %d", ErrTooLarge, len(db.Bodies), MaxBodySignatures)
	}
	m := &Matcher{hashes: map[hashKey][]*HashSig{}, look: anchorLen}
	for i := range m.sizes {
		m.sizes[i] = map[int64]bool{}
	}
	for i := range db.Hashes {
		h := &db.Hashes[i]
		k := hashKey{h.Algo, string(h.Sum)}
		m.hashes[k] = append(m.hashes[k], h)
		if h.Size == AnySize {
			m.anySize[h.Algo] = true
		} else {
			m.sizes[h.Algo][h.Size] = true
		}
	}
	anchorID := map[string]int{}
	var anchors [][]byte
	var refs [][]ref
	for i := range db.Bodies {
		b := &db.Bodies[i]
		pat := b.pat
		if pat == nil { // built by hand rather than parsed
			var err error
			if pat, err = parsePattern(b.Hex); err != nil {
				return nil, fmt.Errorf("clamsig: %s: %w", b.Source, err)
			}
		}
		bs := bodySig{name: b.Name, source: b.Source, off: b.Offset, parts: pat.parts, chain: -1}
		if len(pat.parts) > 1 {
			bs.chain = int32(m.nchain)
			m.nchain += len(pat.parts)
		}
		for j := range pat.parts {
			p := &pat.parts[j]
			m.hist = max(m.hist, p.preMax)
			m.look = max(m.look, len(p.anchor)+p.postMax)
			id, ok := anchorID[string(p.anchor)]
			if !ok {
				id = len(anchors)
				anchorID[string(p.anchor)] = id
				anchors = append(anchors, p.anchor)
				refs = append(refs, nil)
			}
			refs[id] = append(refs[id], ref{int32(len(m.bodies)), int32(j)})
		}
		m.bodies = append(m.bodies, bs)
	}
	m.ix = buildIndex(anchors, refs)
	return m, nil
}

// defaultChunk is how many new bytes a Scanner takes in at a time.
const defaultChunk = 256 << 10

// Scanner matches one stream. Feed it with Write or ReadFrom, then call
// Finish once; it cannot be used after Finish. It is not safe for
// concurrent use. Its memory is bounded by the longest signature part, not
// by the stream: it keeps only the bytes a verification can still need.
type Scanner struct {
	m    *Matcher
	size int64
	fed  int64

	buf     []byte
	pooled  *[]byte
	base    int64 // stream position of buf[0]
	n       int   // bytes in buf
	scanned int   // anchors starting in buf[:scanned] have been looked for

	hashers [3]hash.Hash
	matched []bool
	found   []Match
	best    []int64 // per chain part: the earliest end of a chain through it
	ivA     []ival  // scratch for walk
	ivB     []ival
	hits    []int // scratch for findLit
}

// NewScanner returns a Scanner for a stream of exactly size bytes.
func (m *Matcher) NewScanner(size int64) *Scanner {
	chunk := defaultChunk
	if size < int64(chunk) {
		chunk = max(int(size), 4<<10)
	}
	return m.newScanner(size, chunk)
}

// newScanner takes the chunk size, so that tests can make matches cross
// many buffer refills.
func (m *Matcher) newScanner(size int64, chunk int) *Scanner {
	sc := &Scanner{m: m, size: size}
	need := m.hist + m.look + chunk
	if chunk == defaultChunk {
		if p, ok := m.pool.Get().(*[]byte); ok && len(*p) == need {
			sc.pooled = p
		} else {
			b := make([]byte, need)
			sc.pooled = &b
		}
		sc.buf = *sc.pooled
	} else {
		sc.buf = make([]byte, need)
	}
	for a := MD5; a <= SHA256; a++ {
		if m.anySize[a] || m.sizes[a][size] {
			switch a {
			case MD5:
				sc.hashers[a] = md5.New()
			case SHA1:
				sc.hashers[a] = sha1.New()
			case SHA256:
				sc.hashers[a] = sha256.New()
			}
		}
	}
	return sc
}

// Write feeds p to the scanner. It never fails.
func (sc *Scanner) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if sc.n == len(sc.buf) {
			sc.compact()
		}
		k := copy(sc.buf[sc.n:], p)
		sc.take(k)
		p = p[k:]
	}
	return total, nil
}

// ReadFrom feeds the scanner from r until EOF, reading straight into its
// buffer.
func (sc *Scanner) ReadFrom(r io.Reader) (int64, error) {
	return sc.readFrom(context.Background(), r)
}

func (sc *Scanner) readFrom(ctx context.Context, r io.Reader) (int64, error) {
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		if sc.n == len(sc.buf) {
			sc.compact()
		}
		k, err := r.Read(sc.buf[sc.n:])
		if k > 0 {
			sc.take(k)
			total += int64(k)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// take accounts for k new bytes at buf[n:] and scans what it can.
func (sc *Scanner) take(k int) {
	for _, h := range sc.hashers {
		if h != nil {
			h.Write(sc.buf[sc.n : sc.n+k])
		}
	}
	sc.n += k
	sc.fed += int64(k)
	// Hold back look bytes, so that every hit can be verified in full.
	if limit := sc.n - sc.m.look + 1; limit > sc.scanned {
		sc.run(limit)
	}
}

// compact drops what no verification can need any more: everything more
// than hist bytes before the scan position.
func (sc *Scanner) compact() {
	from := max(sc.scanned-sc.m.hist, 0)
	copy(sc.buf, sc.buf[from:sc.n])
	sc.n -= from
	sc.scanned -= from
	sc.base += int64(from)
}

// run looks for anchors starting in buf[scanned:limit]. The caller
// guarantees limit+3 < n: four bytes can be read at every position.
func (sc *Scanner) run(limit int) {
	ix := sc.m.ix
	buf := sc.buf[:limit+3]
	filter := ix.filter
	i := sc.scanned
	if ix.short == nil {
		// Eight bytes at a time give the keys at five positions.
		for ; i+8 <= len(buf) && i+5 <= limit; i += 5 {
			w := binary.LittleEndian.Uint64(buf[i:])
			x0, x1, x2, x3, x4 := uint32(w), uint32(w>>8), uint32(w>>16), uint32(w>>24), uint32(w>>32)
			h0 := (x0 * hashMul) >> (32 - filterBits)
			h1 := (x1 * hashMul) >> (32 - filterBits)
			h2 := (x2 * hashMul) >> (32 - filterBits)
			h3 := (x3 * hashMul) >> (32 - filterBits)
			h4 := (x4 * hashMul) >> (32 - filterBits)
			if (filter[h0>>6]>>(h0&63)|filter[h1>>6]>>(h1&63)|filter[h2>>6]>>(h2&63)|filter[h3>>6]>>(h3&63)|filter[h4>>6]>>(h4&63))&1 != 0 {
				for k, x := range [5]uint32{x0, x1, x2, x3, x4} {
					if h := (x * hashMul) >> (32 - filterBits); filter[h>>6]&(1<<(h&63)) != 0 {
						sc.probe(i+k, x)
					}
				}
			}
		}
		for ; i < limit; i++ {
			x := binary.LittleEndian.Uint32(buf[i:])
			if h := (x * hashMul) >> (32 - filterBits); filter[h>>6]&(1<<(h&63)) != 0 {
				sc.probe(i, x)
			}
		}
	} else {
		short := (*[1 << 16 / 64]uint64)(ix.short)
		for ; i+8 <= len(buf) && i+5 <= limit; i += 5 {
			w := binary.LittleEndian.Uint64(buf[i:])
			x0, x1, x2, x3, x4 := uint32(w), uint32(w>>8), uint32(w>>16), uint32(w>>24), uint32(w>>32)
			h0 := (x0 * hashMul) >> (32 - filterBits)
			h1 := (x1 * hashMul) >> (32 - filterBits)
			h2 := (x2 * hashMul) >> (32 - filterBits)
			h3 := (x3 * hashMul) >> (32 - filterBits)
			h4 := (x4 * hashMul) >> (32 - filterBits)
			g0, g1, g2, g3, g4 := uint16(x0), uint16(x1), uint16(x2), uint16(x3), uint16(x4)
			if (filter[h0>>6]>>(h0&63)|filter[h1>>6]>>(h1&63)|filter[h2>>6]>>(h2&63)|filter[h3>>6]>>(h3&63)|filter[h4>>6]>>(h4&63)|
				short[g0>>6]>>(g0&63)|short[g1>>6]>>(g1&63)|short[g2>>6]>>(g2&63)|short[g3>>6]>>(g3&63)|short[g4>>6]>>(g4&63))&1 != 0 {
				for k, x := range [5]uint32{x0, x1, x2, x3, x4} {
					if h := (x * hashMul) >> (32 - filterBits); filter[h>>6]&(1<<(h&63)) != 0 {
						sc.probe(i+k, x)
					}
					if g := uint16(x); short[g>>6]&(1<<(g&63)) != 0 {
						sc.probeShort(i+k, g)
					}
				}
			}
		}
		for ; i < limit; i++ {
			x := binary.LittleEndian.Uint32(buf[i:])
			if h := (x * hashMul) >> (32 - filterBits); filter[h>>6]&(1<<(h&63)) != 0 {
				sc.probe(i, x)
			}
			if g := uint16(x); short[g>>6]&(1<<(g&63)) != 0 {
				sc.probeShort(i, g)
			}
		}
	}
	sc.scanned = limit
}

// runTail finishes the stream: the last positions, where only anchors of
// two or three bytes fit.
func (sc *Scanner) runTail() {
	if sc.n-3 > sc.scanned {
		sc.run(sc.n - 3)
	}
	if sc.m.ix.short != nil {
		for i := sc.scanned; i+1 < sc.n; i++ {
			g := uint16(sc.buf[i]) | uint16(sc.buf[i+1])<<8
			if sc.m.ix.short[g>>6]&(1<<(g&63)) != 0 {
				sc.probeShort(i, g)
			}
		}
	}
	sc.scanned = sc.n
}

// probe verifies the parts whose four-byte anchor may start at buf[i].
func (sc *Scanner) probe(i int, x uint32) {
	refs := sc.m.ix.lookup(x)
	if len(refs) == 0 {
		return // a false positive of the filter
	}
	if sc.matched == nil {
		// Allocated on the first hit: most samples have none.
		sc.matched = make([]bool, len(sc.m.bodies))
	}
	end := sc.base + int64(i) + anchorLen
	for _, r := range refs {
		if !sc.matched[r.sig] {
			sc.verify(r, end)
		}
	}
}

// probeShort verifies the parts whose two- or three-byte anchor may start
// at buf[i].
func (sc *Scanner) probeShort(i int, g uint16) {
	if sc.matched == nil {
		sc.matched = make([]bool, len(sc.m.bodies))
	}
	for _, r := range sc.m.ix.shortRefs[g] {
		a := r.anchor
		if sc.matched[r.sig] || i+len(a) > sc.n || (len(a) == 3 && sc.buf[i+2] != a[2]) {
			continue
		}
		sc.verify(r.ref, sc.base+int64(i+len(a)))
	}
}

// verify checks one part of one signature whose anchor ends at stream
// position end, and advances the signature's chain.
func (sc *Scanner) verify(r ref, end int64) {
	b := &sc.m.bodies[r.sig]
	p := &b.parts[r.part]
	anchorStart := end - int64(len(p.anchor))
	lo, hi := sc.base, sc.base+int64(sc.n)

	last := int(r.part) == len(b.parts)-1
	if !last && sc.best != nil && sc.best[b.chain+r.part] <= end+int64(p.postMin) {
		return // this hit cannot end the part earlier than one already seen
	}
	// Where may this part start?
	minStart, maxStart := int64(0), int64(math.MaxInt64)
	if r.part == 0 {
		if !b.off.Any {
			minStart = b.off.N
			if b.off.FromEOF {
				minStart = sc.size - b.off.N
			}
			maxStart = minStart + b.off.Shift
			if maxStart < 0 {
				return
			}
		}
	} else {
		if sc.best == nil || sc.best[b.chain+r.part-1] == math.MaxInt64 {
			return
		}
		minStart = sc.best[b.chain+r.part-1] + int64(p.gapBefore)
	}
	if anchorStart-int64(p.preMin) < minStart || anchorStart-int64(p.preMax) > maxStart {
		return
	}
	// The pre elements must start within [minStart, maxStart]: at a
	// distance from the anchor in [anchorStart-maxStart, anchorStart-minStart].
	dmin := int(max(anchorStart-maxStart, 0))
	dmax := int(min(anchorStart-minStart, int64(p.preMax)))
	if _, ok := sc.walk(p.pre, false, anchorStart, lo, hi, dmin, dmax); !ok {
		return
	}
	postEnd, ok := sc.walk(p.post, true, end, lo, hi, 0, p.postMax)
	if !ok {
		return
	}
	if last {
		sc.matched[r.sig] = true
		sc.found = append(sc.found, Match{Name: b.name, Source: b.source})
		return
	}
	if sc.best == nil {
		sc.best = make([]int64, sc.m.nchain)
		for i := range sc.best {
			sc.best[i] = math.MaxInt64
		}
	}
	// The earliest end leaves the most room for the next part.
	if e := end + int64(postEnd); e < sc.best[b.chain+r.part] {
		sc.best[b.chain+r.part] = e
	}
}

// ival is an inclusive interval of distances.
type ival struct{ a, b int }

// addDist appends distance d (not below the last one) to a sorted list of
// disjoint intervals, merging neighbours.
func addDist(ivs []ival, d int) []ival {
	if n := len(ivs); n > 0 && d <= ivs[n-1].b+1 {
		ivs[n-1].b = max(ivs[n-1].b, d)
		return ivs
	}
	return append(ivs, ival{d, d})
}

// walk matches elems starting at origin, forward (each element after the
// previous) or backward (each element before the next, in reverse order),
// on the bytes at stream positions [lo, hi). It returns the smallest
// distance from origin, within [dmin, dmax], at which a match of all the
// elements can end (forward) or start (backward).
//
// The distances still possible after each element are kept as intervals,
// so a gap costs the same whatever its width, and a literal after a gap is
// found with bytes.Index rather than tried at every distance: data made of
// one repeated byte must not make verification quadratic.
func (sc *Scanner) walk(elems []elem, fwd bool, origin, lo, hi int64, dmin, dmax int) (int, bool) {
	cur := append(sc.ivA[:0], ival{0, 0})
	next := sc.ivB[:0]
	defer func() { sc.ivA, sc.ivB = cur, next }()
	for k := range elems {
		e := &elems[k]
		if !fwd {
			e = &elems[len(elems)-1-k]
		}
		final := k == len(elems)-1
		next = next[:0]
		if e.kind == elemGap {
			for _, iv := range cur {
				if a, b := iv.a+e.min, min(iv.b+e.max, dmax); a <= b {
					next = addDist(next, a)
					next[len(next)-1].b = max(next[len(next)-1].b, b)
				}
			}
			cur, next = next, cur
			if len(cur) == 0 {
				return 0, false
			}
			continue
		}
		l := e.length()
		// The element must fit in the data and end within dmax.
		top := int(min(int64(dmax-l), hi-origin-int64(l)))
		if !fwd {
			top = int(min(int64(dmax-l), origin-lo-int64(l)))
		}
		for _, iv := range cur {
			a, b := iv.a, min(iv.b, top)
			if final {
				a = max(a, dmin-l)
			}
			if a > b {
				continue
			}
			if e.kind == elemLit && b > a {
				var found bool
				next, found = sc.findLit(next, e.lit, fwd, origin, a, b, final)
				if found && final {
					return next[0].a, true
				}
				continue
			}
			for d := a; d <= b; d++ {
				at := origin + int64(d)
				if !fwd {
					at = origin - int64(d) - int64(l)
				}
				if e.matchAt(sc.buf[at-sc.base:]) {
					if final {
						return d + l, true
					}
					next = addDist(next, d+l)
				}
			}
		}
		cur, next = next, cur
		if len(cur) == 0 {
			return 0, false
		}
	}
	// No elements, or none left to check: the smallest distance in range.
	for _, iv := range cur {
		if d := max(iv.a, dmin); d <= iv.b && d <= dmax {
			return d, true
		}
	}
	return 0, false
}

// findLit finds lit at every distance in [a, b] from origin (forward: lit
// starts there; backward: lit ends that far before origin) and adds the
// distances past it to next, in increasing order. With first it stops at
// the first, leaving only it in next.
func (sc *Scanner) findLit(next []ival, lit []byte, fwd bool, origin int64, a, b int, first bool) ([]ival, bool) {
	l := len(lit)
	found := false
	if fwd {
		from := origin + int64(a) - sc.base
		win := sc.buf[from : origin+int64(b)-sc.base+int64(l)]
		for off := 0; ; {
			i := bytes.Index(win[off:], lit)
			if i < 0 {
				return next, found
			}
			d := a + off + i + l
			if first {
				return append(next[:0], ival{d, d}), true
			}
			next, found = addDist(next, d), true
			off += i + 1
		}
	}
	// Backward: the element occupies [origin-d-l, origin-d). Search
	// forward (bytes.Index is vectorised, LastIndex is not) and add the
	// distances in reverse, so that they come out increasing.
	from := origin - int64(b) - int64(l) - sc.base
	win := sc.buf[from : origin-int64(a)-sc.base]
	hits := sc.hits[:0]
	for off := 0; ; {
		i := bytes.Index(win[off:], lit)
		if i < 0 {
			break
		}
		hits = append(hits, off+i)
		off += i + 1
	}
	sc.hits = hits
	for k := len(hits) - 1; k >= 0; k-- {
		d := int(origin - (sc.base + from + int64(hits[k]))) // distance of lit's start
		if first {
			return append(next[:0], ival{d, d}), true
		}
		next, found = addDist(next, d), true
	}
	return next, found
}

// Finish scans what is left, checks the hash signatures and returns every
// signature that matched, body signatures in the order found, then hash
// signatures. It returns ErrSizeMismatch (and no hash matches) when the
// stream was not exactly as long as declared.
func (sc *Scanner) Finish() ([]Match, error) {
	sc.runTail()
	found := sc.found
	sc.release()
	if sc.fed != sc.size {
		return found, fmt.Errorf("%w: read %d bytes, want %d", ErrSizeMismatch, sc.fed, sc.size)
	}
	for a, h := range sc.hashers {
		if h == nil {
			continue
		}
		for _, hs := range sc.m.hashes[hashKey{HashAlgo(a), string(h.Sum(nil))}] {
			if hs.Size == AnySize || hs.Size == sc.size {
				found = append(found, Match{Name: hs.Name, Source: hs.Source})
			}
		}
	}
	return found, nil
}

func (sc *Scanner) release() {
	if sc.pooled != nil {
		sc.m.pool.Put(sc.pooled)
		sc.pooled = nil
	}
	sc.buf = nil
}

// Scan matches the size bytes read from r, checking ctx between chunks.
// On a read error or cancellation it returns the body matches found so far
// with the error.
func (m *Matcher) Scan(ctx context.Context, r io.Reader, size int64) ([]Match, error) {
	sc := m.NewScanner(size)
	if _, err := sc.readFrom(ctx, r); err != nil {
		sc.runTail() // what was read may still hold a match
		found := sc.found
		sc.release()
		return found, err
	}
	return sc.Finish()
}

// ScanBytes matches b, which is already in memory.
func (m *Matcher) ScanBytes(b []byte) []Match {
	sc := m.NewScanner(int64(len(b)))
	sc.Write(b)
	found, _ := sc.Finish() // the size is right by construction
	return found
}
