package clamsig

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// describeLoad renders what Load returned, for the golden file.
func describeLoad(db *DB, errs []error) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "counts: %s\n", db.Describe())
	for _, h := range db.Hashes {
		size := fmt.Sprint(h.Size)
		if h.Size == AnySize {
			size = "*"
		}
		fmt.Fprintf(&sb, "hash %s %s size=%s %s\n", h.Source, h.Algo, size, h.Name)
	}
	for _, b := range db.Bodies {
		fmt.Fprintf(&sb, "body %s offset=%s parts=%d %s\n", b.Source, b.Offset, len(b.pat.parts), b.Name)
	}
	for _, err := range errs {
		fmt.Fprintf(&sb, "error %v\n", err)
	}
	return sb.String()
}

func TestLoadGolden(t *testing.T) {
	db, errs := Load(filepath.Join("testdata", "load"))
	got := describeLoad(db, errs)
	golden := filepath.Join("testdata", "load.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("Load(testdata/load):\ngot:\n%s\nwant:\n%s", got, want)
	}
	for _, err := range errs {
		var le *LineError
		if !errors.As(err, &le) || le.File == "" || le.Line < 1 {
			t.Errorf("error %v does not name a file and line", err)
		}
	}
	if _, err := Compile(db); err != nil {
		t.Errorf("Compile: %v", err)
	}
}

func TestLoadMissingDir(t *testing.T) {
	db, errs := Load(filepath.Join(t.TempDir(), "nope"))
	if db != nil || len(errs) != 1 || !errors.Is(errs[0], os.ErrNotExist) {
		t.Errorf("got %v, %v; want nil and one not-exist error", db, errs)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, parser, line, want string
	}{
		{"odd hex", "ndb", "A:0:*:6c617", "x.ndb:1: hex signature: odd length"},
		{"odd before star", "ndb", "A:0:*:6c617*6162", "x.ndb:1: hex signature: odd length"},
		{"fields", "ndb", "A:0:*", "x.ndb:1: want Name:TargetType:Offset:HexSig[:MinFL[:MaxFL]], got 3 fields"},
		{"target", "ndb", "A:x:*:6162", `x.ndb:1: bad target type "x"`},
		{"offset", "ndb", "A:0:-1:6162", `x.ndb:1: offset "-1" is not supported (only *, n, EOF-n, with an optional ,shift)`},
		{"offset shift", "ndb", "A:0:1,x:6162", `x.ndb:1: bad offset "1,x"`},
		{"flevel", "ndb", "A:0:*:6162:x", `x.ndb:1: bad functionality level "x"`},
		{"unclosed gap", "ndb", "A:0:*:6162{3", "x.ndb:1: hex signature: unclosed { at offset 4"},
		{"unclosed alt", "ndb", "A:0:*:6162(aa|bb", "x.ndb:1: hex signature: unclosed ( at offset 4"},
		{"empty alt", "ndb", "A:0:*:6162(aa|)", "x.ndb:1: hex signature: offset 4: empty alternative"},
		{"masked alt", "ndb", "A:0:*:6162(a?|bb)", `x.ndb:1: hex signature: offset 4: alternative "a?" is not plain hex`},
		{"double star", "ndb", "A:0:*:6162**6364", "x.ndb:1: hex signature: misplaced wildcard at offset 5"},
		{"ends with star", "ndb", "A:0:*:6162*", "x.ndb:1: hex signature: ends with a wildcard"},
		{"gap before star", "ndb", "A:0:*:6162{2}*6364", "x.ndb:1: hex signature: part 1: ends with a gap before a wildcard"},
		{"huge gap", "ndb", "A:0:*:6162{99999999}6364", "x.ndb:1: hex signature: offset 4: gap 99999999 is longer than 1048576"},
		{"bad gap number", "ndb", "A:0:*:6162{1-x}6364", `x.ndb:1: hex signature: offset 4: bad number "x" in gap`},
		{"control in name", "ndb", "A\x01:0:*:6162", "x.ndb:1: control character in signature name"},
		{"hdb fields", "hdb", "abc", "x.hdb:1: want HASH:SIZE:NAME, got 1 fields"},
		{"hdb size", "hdb", "44d88612fea8a8f36de82e1278abb02f:+5:A", `x.hdb:1: bad size "+5"`},
		{"hdb flevel", "hdb", "44d88612fea8a8f36de82e1278abb02f:5:A:z", `x.hdb:1: bad functionality level "z"`},
		{"hsb length", "hsb", "abcd:5:A", "x.hsb:1: hash of 4 hex digits is not MD5, SHA1 or SHA256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parse := map[string]func(r *strings.Reader, f string) (*DB, []error){
				"ndb": func(r *strings.Reader, f string) (*DB, []error) { return ParseNDB(r, f) },
				"hdb": func(r *strings.Reader, f string) (*DB, []error) { return ParseHDB(r, f) },
				"hsb": func(r *strings.Reader, f string) (*DB, []error) { return ParseHSB(r, f) },
			}[tc.parser]
			db, errs := parse(strings.NewReader(tc.line+"\n"), "x."+tc.parser)
			if db.Len() != 0 || len(errs) != 1 {
				t.Fatalf("got %d signatures and errors %v, want one error", db.Len(), errs)
			}
			if got := errs[0].Error(); got != tc.want {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestLongLine(t *testing.T) {
	in := "A:0:*:6162\nB:0:*:" + strings.Repeat("61", MaxLineLength) + "\nC:0:*:6364"
	db, errs := ParseNDB(strings.NewReader(in), "long.ndb")
	if len(errs) != 1 || errs[0].Error() != fmt.Sprintf("long.ndb:2: line longer than %d bytes", MaxLineLength) {
		t.Fatalf("errors: got %v, want one long line error", errs)
	}
	if len(db.Bodies) != 2 || db.Bodies[0].Name != "A" || db.Bodies[1].Name != "C" || db.Bodies[1].Source != "long.ndb:3" {
		t.Errorf("got %+v, want A and C (from line 3)", db.Bodies)
	}
}

// FuzzParseNDB checks that no input makes the parser, the compiler or a
// scan panic.
func FuzzParseNDB(f *testing.F) {
	for _, s := range []string{
		"A:0:*:6c617a61726574\n",
		"Test.Wild:0:0:4d5a??90{2-4}0300*(aa|bb)cafe:73\n",
		"E:0:EOF-4,2:dead?eef\nB:0:10:6162{-3}63{2-}6465\n",
		"A:0:*:6162**63\nA:1:*:6162\n#x\n\n",
	} {
		f.Add([]byte(s))
	}
	data := []byte("lazaret\x4d\x5a\x00\x90abcde\xaa\xca\xfe\xde\xad\xbe\xef")
	f.Fuzz(func(t *testing.T, in []byte) {
		db, _ := ParseNDB(strings.NewReader(string(in)), "f.ndb")
		m, err := Compile(db)
		if err != nil {
			return
		}
		m.ScanBytes(data)
		m.ScanBytes(in)
	})
}

// FuzzParseHDB checks that no input makes the hash parsers panic, and
// that what they accept compiles.
func FuzzParseHDB(f *testing.F) {
	for _, s := range []string{
		"44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature\n",
		"d41d8cd98f00b204e9800998ecf8427e:*:Any:73\r\n",
		"da39a3ee5e6b4b0d3255bfef95601890afd80709:0:S1\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855:0:S256\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		db, _ := ParseHDB(strings.NewReader(string(in)), "f.hdb")
		hs, _ := ParseHSB(strings.NewReader(string(in)), "f.hsb")
		db.Add(hs)
		m, err := Compile(db)
		if err != nil {
			t.Fatalf("Compile of parsed hashes: %v", err)
		}
		m.ScanBytes(in)
	})
}

func TestSignatureCap(t *testing.T) {
	defer func(n int) { maxSignatures = n }(maxSignatures)
	maxSignatures = 3
	db, errs := ParseNDB(strings.NewReader("A:0:*:6162\nB:0:*:6162\nC:0:*:6162\nD:0:*:6162\nE:0:*:6162\n"), "cap.ndb")
	if db.Len() != 3 || len(errs) != 1 || !errors.Is(errs[0], ErrTooManySignatures) || !strings.HasPrefix(errs[0].Error(), "cap.ndb:4: ") {
		t.Errorf("got %d signatures, errors %v; want 3 and one cap error at line 4", db.Len(), errs)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.ndb"), []byte("A:0:*:6162\nB:0:*:6162\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.hdb"), []byte("44d88612fea8a8f36de82e1278abb02f:68:E\n44d88612fea8a8f36de82e1278abb02f:69:F\n"), 0o644)
	db, errs = Load(dir)
	if db.Len() != 2 || len(errs) != 1 || !errors.Is(errs[0], ErrTooManySignatures) {
		t.Errorf("Load: got %d signatures, errors %v; want 2 and one cap error", db.Len(), errs)
	}
}
