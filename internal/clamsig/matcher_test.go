package clamsig

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func mustDB(t testing.TB, ndb, hdb string) *DB {
	t.Helper()
	db, errs := ParseNDB(strings.NewReader(ndb), "t.ndb")
	if len(errs) > 0 {
		t.Fatalf("ParseNDB: %v", errs)
	}
	h, errs := ParseHDB(strings.NewReader(hdb), "t.hdb")
	if len(errs) > 0 {
		t.Fatalf("ParseHDB: %v", errs)
	}
	db.Add(h)
	return db
}

func TestMatcherTable(t *testing.T) {
	pad := func(s string) []byte { return []byte("xxxxxxxx" + s + "yyyyyyyy") }
	for _, tc := range []struct {
		name, sig, off string
		data           []byte
		want           bool
	}{
		{"plain", "6162636465", "*", pad("abcde"), true},
		{"plain miss", "6162636465", "*", pad("abcdf"), false},
		{"at start", "6162", "*", []byte("ab"), true},
		{"wildcard byte", "6162??6465", "*", pad("ab_de"), true},
		{"wildcard byte miss", "6162??6465", "*", pad("abde"), false},
		{"high nibble", "61626?6465", "*", pad("ab`de"), true},
		{"low nibble", "6162?36465", "*", pad("abSde"), true},
		{"low nibble miss", "6162?36465", "*", pad("abTde"), false},
		{"fixed gap", "6162{3}6465", "*", pad("ab123de"), true},
		{"fixed gap miss", "6162{3}6465", "*", pad("ab12de"), false},
		{"range gap low", "6162{1-3}6465", "*", pad("ab1de"), true},
		{"range gap high", "6162{1-3}6465", "*", pad("ab123de"), true},
		{"range gap over", "6162{1-3}6465", "*", pad("ab1234de"), false},
		{"upto gap zero", "6162{-2}6465", "*", pad("abde"), true},
		{"star", "6162*6465", "*", pad("ab" + strings.Repeat("z", 100000) + "de"), true},
		{"star order", "6465*6162", "*", pad("ab_de"), false},
		{"star no overlap", "616263*636465", "*", pad("abcde"), false},
		{"star adjacent", "616263*636465", "*", pad("abccde"), true},
		{"min gap", "6162{3-}6465", "*", pad("ab12de"), false},
		{"min gap ok", "6162{3-}6465", "*", pad("ab123456de"), true},
		{"alternatives", "6162(63|64)6566", "*", pad("abdef"), true},
		{"alternatives miss", "6162(63|64)6566", "*", pad("abxef"), false},
		{"multi-byte alternatives", "(6162|6364)6566", "*", pad("cdef"), true},
		{"anchor prefix verify", "41??4243444546", "*", pad("A_BCDEF"), true},
		{"anchor prefix miss", "41??4243444546", "*", pad("B_BCDEF"), false},
		{"offset exact", "6162", "8", pad("ab"), true},
		{"offset wrong", "6162", "7", pad("ab"), false},
		{"offset shift", "6162", "5,3", pad("ab"), true},
		{"offset shift short", "6162", "5,2", pad("ab"), false},
		{"eof", "7979", "EOF-2", pad("ab"), true},
		{"eof wrong", "7979", "EOF-1", pad("ab"), false},
		{"eof shift", "6162", "EOF-12,4", pad("ab"), true},
		{"long literal", hex.EncodeToString([]byte("the quick brown fox")), "*", pad("the quick brown fox"), true},
		{"long literal miss", hex.EncodeToString([]byte("the quick brown fox")), "*", pad("the quick brown fix"), false},
		{"three parts", "6161*6262*6363", "*", pad("aa..bb..cc"), true},
		{"three parts misorder", "6161*6262*6363", "*", pad("aa..cc..bb"), false},
		{"repeated anchor", "6161*6161", "*", pad("aa"), false},
		{"repeated anchor twice", "6161*6161", "*", pad("aa_aa"), true},
		// A later hit of the first part ends earlier and must be used.
		{"earliest end", "6161{0-6}6262*6363", "*", pad("aa....aa.bbcc"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := mustDB(t, "S:0:"+tc.off+":"+tc.sig+"\n", "")
			m, err := Compile(db)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := naiveMatch(db, tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if (len(ref) == 1) != tc.want {
				t.Fatalf("reference matcher: got %v, want match %v", ref, tc.want)
			}
			for _, chunk := range []int{1, 2, 3, 7, 64, defaultChunk} {
				sc := m.newScanner(int64(len(tc.data)), chunk)
				for p := tc.data; len(p) > 0; {
					k := min(len(p), chunk/2+1)
					sc.Write(p[:k])
					p = p[k:]
				}
				got, err := sc.Finish()
				if err != nil {
					t.Fatal(err)
				}
				if (len(got) == 1) != tc.want {
					t.Errorf("chunk %d: got %v, want match %v", chunk, got, tc.want)
				}
			}
		})
	}
}

func TestHashSignatures(t *testing.T) {
	data := []byte("some bytes to hash")
	sum := md5.Sum(data)
	md := hex.EncodeToString(sum[:])
	hdb := fmt.Sprintf("%s:%d:Exact\n%s:*:Any\n%s:%d:WrongSize\n%s:%d:WrongHash\n",
		md, len(data), md, md, len(data)+1, strings.Repeat("0", 32), len(data))
	db := mustDB(t, "", hdb)
	m, err := Compile(db)
	if err != nil {
		t.Fatal(err)
	}
	got := matchNames(m.ScanBytes(data))
	if want := []string{"Any", "Exact"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// No signature has size 5 and none is for any size of SHA256: the
	// scanner must not even compute those hashes.
	db = mustDB(t, "", md+":18:M\n"+strings.Repeat("ab", 32)+":18:S\n")
	m, _ = Compile(db)
	if sc := m.NewScanner(5); sc.hashers[MD5] != nil || sc.hashers[SHA1] != nil || sc.hashers[SHA256] != nil {
		t.Errorf("hashers for a size no signature has: %v", sc.hashers)
	}
	if sc := m.NewScanner(18); sc.hashers[MD5] == nil || sc.hashers[SHA256] == nil || sc.hashers[SHA1] != nil {
		t.Errorf("hashers for size 18: %v", sc.hashers)
	}
}

func TestSizeMismatch(t *testing.T) {
	m, _ := Compile(mustDB(t, "S:0:*:6162\n", ""))
	sc := m.NewScanner(10)
	sc.Write([]byte("ab"))
	got, err := sc.Finish()
	if !errors.Is(err, ErrSizeMismatch) {
		t.Fatalf("got %v, want ErrSizeMismatch", err)
	}
	if len(got) != 1 {
		t.Errorf("body matches before the error: got %v, want S", got)
	}
}

func TestScanContext(t *testing.T) {
	m, _ := Compile(mustDB(t, "S:0:*:6162\n", ""))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Scan(ctx, bytes.NewReader(make([]byte, 100)), 100); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("xxab"), iotest.ErrReader(boom))
	got, err := m.Scan(context.Background(), r, 100)
	if !errors.Is(err, boom) {
		t.Errorf("got %v, want boom", err)
	}
	if len(got) != 1 {
		t.Errorf("matches before the error: got %v, want S", got)
	}
}

// genSig writes a random body signature over a small alphabet, and
// returns with it a function that writes a random instance of it.
func genSig(r *rand.Rand) (string, func(*rand.Rand) []byte) {
	alpha := []byte("abcd")
	var hexs strings.Builder
	var gens []func(*rand.Rand) []byte
	lit := func(n int) {
		b := make([]byte, n)
		for i := range b {
			b[i] = alpha[r.IntN(len(alpha))]
		}
		hexs.WriteString(hex.EncodeToString(b))
		gens = append(gens, func(*rand.Rand) []byte { return b })
	}
	anyBytes := func(r *rand.Rand, n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = alpha[r.IntN(len(alpha))]
		}
		return b
	}
	parts := 1 + r.IntN(3)
	for p := range parts {
		if p > 0 {
			if r.IntN(2) == 0 {
				hexs.WriteString("*")
				gens = append(gens, func(r *rand.Rand) []byte { return anyBytes(r, r.IntN(4)) })
			} else {
				n := r.IntN(3)
				fmt.Fprintf(&hexs, "{%d-}", n)
				gens = append(gens, func(r *rand.Rand) []byte { return anyBytes(r, n+r.IntN(3)) })
			}
		}
		lit(2 + r.IntN(3))
		for range r.IntN(3) {
			switch r.IntN(5) {
			case 0:
				hexs.WriteString("??")
				gens = append(gens, func(r *rand.Rand) []byte { return anyBytes(r, 1) })
			case 1:
				lo := r.IntN(3)
				hi := lo + r.IntN(3)
				switch {
				case lo == hi:
					fmt.Fprintf(&hexs, "{%d}", lo)
				case lo == 0 && r.IntN(2) == 0:
					fmt.Fprintf(&hexs, "{-%d}", hi)
				default:
					fmt.Fprintf(&hexs, "{%d-%d}", lo, hi)
				}
				gens = append(gens, func(r *rand.Rand) []byte { return anyBytes(r, lo+r.IntN(hi-lo+1)) })
			case 2:
				n := 1 + r.IntN(2)
				alts := make([][]byte, 2+r.IntN(2))
				hexs.WriteString("(")
				for i := range alts {
					alts[i] = anyBytes(r, n)
					if i > 0 {
						hexs.WriteString("|")
					}
					hexs.WriteString(hex.EncodeToString(alts[i]))
				}
				hexs.WriteString(")")
				gens = append(gens, func(r *rand.Rand) []byte { return alts[r.IntN(len(alts))] })
			case 3:
				c := alpha[r.IntN(len(alpha))]
				if r.IntN(2) == 0 {
					fmt.Fprintf(&hexs, "%x?", c>>4)
				} else {
					fmt.Fprintf(&hexs, "?%x", c&15)
				}
				gens = append(gens, func(*rand.Rand) []byte { return []byte{c} })
			}
			lit(1 + r.IntN(3))
		}
		if hexs.Len() > 0 && r.IntN(4) == 0 {
			lit(2)
		}
	}
	return hexs.String(), func(r *rand.Rand) []byte {
		var out []byte
		for _, g := range gens {
			out = append(out, g(r)...)
		}
		return out
	}
}

func genOffset(r *rand.Rand) string {
	switch r.IntN(6) {
	case 0:
		return fmt.Sprint(r.IntN(20))
	case 1:
		return fmt.Sprintf("%d,%d", r.IntN(20), r.IntN(10))
	case 2:
		return fmt.Sprintf("EOF-%d", r.IntN(30))
	case 3:
		return fmt.Sprintf("EOF-%d,%d", r.IntN(30), r.IntN(10))
	}
	return "*"
}

// checkStreaming compares the streaming matcher, fed in random chunks with
// a small window, with the reference matcher.
func checkStreaming(t *testing.T, seed uint64, data []byte) {
	r := rand.New(rand.NewPCG(seed, seed>>32|1))
	var ndb strings.Builder
	for i := range 1 + r.IntN(6) {
		sig, inst := genSig(r)
		fmt.Fprintf(&ndb, "S%d:0:%s:%s\n", i, genOffset(r), sig)
		// Plant an instance now and then, at a random place.
		if r.IntN(2) == 0 && len(data) < 4096 {
			at := r.IntN(len(data) + 1)
			data = slices.Insert(slices.Clip(data), at, inst(r)...)
		}
	}
	var hdb strings.Builder
	if r.IntN(3) == 0 {
		sum := md5.Sum(data)
		size := fmt.Sprint(len(data))
		if r.IntN(3) == 0 {
			size = "*"
		}
		fmt.Fprintf(&hdb, "%x:%s:H0\n", sum, size)
	}
	db, errs := ParseNDB(strings.NewReader(ndb.String()), "f.ndb")
	if len(errs) > 0 {
		t.Fatalf("generated signatures do not parse: %v\n%s", errs, ndb.String())
	}
	h, errs := ParseHDB(strings.NewReader(hdb.String()), "f.hdb")
	if len(errs) > 0 {
		t.Fatalf("generated hashes do not parse: %v", errs)
	}
	db.Add(h)
	want, err := naiveMatch(db, data)
	if err != nil {
		t.Fatalf("reference: %v", err)
	}
	m, err := Compile(db)
	if err != nil {
		t.Fatal(err)
	}
	sc := m.newScanner(int64(len(data)), 1+r.IntN(40))
	for p := data; len(p) > 0; {
		k := min(len(p), 1+r.IntN(50))
		sc.Write(p[:k])
		p = p[k:]
	}
	got, err := sc.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if g := matchNames(got); !slices.Equal(g, want) {
		t.Fatalf("streaming got %v, reference %v\nsignatures:\n%sdata %q", g, want, ndb.String(), data)
	}
	// And through ReadFrom with one-byte reads and the default window.
	sc = m.NewScanner(int64(len(data)))
	if _, err := sc.ReadFrom(iotest.OneByteReader(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	got, err = sc.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if g := matchNames(got); !slices.Equal(g, want) {
		t.Fatalf("ReadFrom got %v, reference %v\nsignatures:\n%sdata %q", g, want, ndb.String(), data)
	}
}

func TestMatcherRandom(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 300
	}
	for seed := range uint64(n) {
		r := rand.New(rand.NewPCG(seed, 99))
		data := make([]byte, r.IntN(200))
		for i := range data {
			data[i] = "abcdxy"[r.IntN(6)]
		}
		checkStreaming(t, seed, data)
	}
}

func FuzzMatcher(f *testing.F) {
	f.Add(uint64(1), []byte("aabbccdd"))
	f.Add(uint64(7), []byte("abcdabcdabcdabcdabcdabcdabcd"))
	f.Add(uint64(42), []byte{})
	f.Fuzz(func(t *testing.T, seed uint64, data []byte) {
		if len(data) > 4096 {
			data = data[:4096]
		}
		checkStreaming(t, seed, data)
	})
}

// zeros reads n zero bytes.
type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n == 0 {
		return 0, io.EOF
	}
	k := int(min(int64(len(p)), z.n))
	clear(p[:k])
	z.n -= int64(k)
	return k, nil
}

// TestBoundedMemory matches a signature whose parts are 16 MiB apart
// without the scanner's buffer growing: "*" is followed by state, not by
// buffering.
func TestBoundedMemory(t *testing.T) {
	m, _ := Compile(mustDB(t, "Far:0:*:6c617a61{2-4}72657421*(aa|bb)656e6421\n", ""))
	const gap = 16 << 20
	head, tail := []byte("laza..ret!"), []byte("\xbbend!")
	size := int64(len(head) + gap + len(tail))
	sc := m.NewScanner(size)
	before := len(sc.buf)
	if _, err := sc.ReadFrom(io.MultiReader(bytes.NewReader(head), &zeros{gap}, bytes.NewReader(tail))); err != nil {
		t.Fatal(err)
	}
	if len(sc.buf) != before || before > 1<<20 {
		t.Errorf("buffer: %d bytes before, %d after; want the same, under 1 MiB", before, len(sc.buf))
	}
	got, err := sc.Finish()
	if err != nil || len(got) != 1 || got[0].Name != "Far" {
		t.Errorf("got %v, %v; want Far", got, err)
	}
}
