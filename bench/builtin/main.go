// Command builtin benchmarks lazaret's builtin engine against clamscan on
// the same signatures and files. run.sh drives it:
//
//	builtin gen -sigs DIR -data DIR   writes random .ndb and .hdb signatures
//	                                  and random files, a few of them infected
//	builtin scan -d SIGDIR PATH...    scans files with the builtin engine and
//	                                  prints what clamscan --no-summary prints
package main

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/lazaret/lazaret/internal/engine/builtin"
	"github.com/lazaret/lazaret/internal/scan"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: builtin gen|scan ...")
		os.Exit(2)
	}
	var err error
	code := 0
	switch os.Args[1] {
	case "gen":
		err = gen(os.Args[2:])
	case "scan":
		code, err = scanCmd(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "builtin:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

// sig is a generated body signature with a way to write bytes it matches.
type sig struct {
	name, hex string
	inst      func(r *rand.Rand) []byte
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// genSig writes a body signature of one to three parts joined by "*" or
// "{n-}"; each part starts with a static run of 6-12 bytes (clamd needs
// two; a signature of four plain bytes turns up in a GiB of random data)
// followed by up to three wildcards ("??", "{n-m}", "(aa|bb)", a nibble),
// each followed by a static run of 2-8 bytes.
func genSig(r *rand.Rand, name string) sig {
	var hx strings.Builder
	var gens []func(*rand.Rand) []byte
	run := func(n int) {
		b := randBytes(r, n)
		hx.WriteString(hex.EncodeToString(b))
		gens = append(gens, func(*rand.Rand) []byte { return b })
	}
	for p := range 1 + r.IntN(3) {
		if p > 0 {
			if r.IntN(2) == 0 {
				hx.WriteString("*")
				gens = append(gens, func(r *rand.Rand) []byte { return randBytes(r, r.IntN(200)) })
			} else {
				n := r.IntN(16)
				fmt.Fprintf(&hx, "{%d-}", n)
				gens = append(gens, func(r *rand.Rand) []byte { return randBytes(r, n+r.IntN(100)) })
			}
		}
		run(6 + r.IntN(7))
		for range r.IntN(4) {
			switch r.IntN(4) {
			case 0:
				hx.WriteString("??")
				gens = append(gens, func(r *rand.Rand) []byte { return randBytes(r, 1) })
			case 1:
				lo := r.IntN(8)
				hi := lo + 1 + r.IntN(24)
				fmt.Fprintf(&hx, "{%d-%d}", lo, hi)
				gens = append(gens, func(r *rand.Rand) []byte { return randBytes(r, lo+r.IntN(hi-lo+1)) })
			case 2:
				n := 1 + r.IntN(2)
				alts := [][]byte{randBytes(r, n), randBytes(r, n)}
				fmt.Fprintf(&hx, "(%x|%x)", alts[0], alts[1])
				gens = append(gens, func(r *rand.Rand) []byte { return alts[r.IntN(2)] })
			case 3:
				c := byte(r.Uint32())
				fmt.Fprintf(&hx, "%x?", c>>4)
				gens = append(gens, func(r *rand.Rand) []byte { return []byte{c&0xf0 | byte(r.IntN(16))} })
			}
			run(2 + r.IntN(7))
		}
	}
	return sig{name: name, hex: hx.String(), inst: func(r *rand.Rand) []byte {
		var out []byte
		for _, g := range gens {
			out = append(out, g(r)...)
		}
		return out
	}}
}

func gen(args []string) error {
	fl := flag.NewFlagSet("gen", flag.ContinueOnError)
	sigDir := fl.String("sigs", "", "folder for the signature files")
	dataDir := fl.String("data", "", "folder for the data files")
	nfiles := fl.Int("files", 64, "clean random files")
	size := fl.Int("size", 16<<20, "bytes per file")
	ninfected := fl.Int("infected", 4, "files with a body signature match")
	nndb := fl.Int("ndb", 1000, "body signatures")
	nhdb := fl.Int("hdb", 10000, "MD5 signatures")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *sigDir == "" || *dataDir == "" {
		return errors.New("gen: -sigs and -data are required")
	}
	for _, d := range []string{*sigDir, *dataDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// Fresh content every run: clamd caches clean results by content.
	seed := uint64(time.Now().UnixNano())
	r := rand.New(rand.NewPCG(seed, 1))
	var expected []string

	sigs := make([]sig, *nndb)
	var ndb strings.Builder
	for i := range sigs {
		sigs[i] = genSig(r, fmt.Sprintf("Lazaret.Bench.Body.%d", i))
		fmt.Fprintf(&ndb, "%s:0:*:%s\n", sigs[i].name, sigs[i].hex)
	}
	if err := os.WriteFile(filepath.Join(*sigDir, "bench.ndb"), []byte(ndb.String()), 0o644); err != nil {
		return err
	}

	// One small file is caught by its MD5, among nhdb-1 random hashes.
	hashFile := randBytes(r, 4096)
	sum := md5.Sum(hashFile)
	var hdb strings.Builder
	fmt.Fprintf(&hdb, "%x:%d:Lazaret.Bench.Hash.0\n", sum, len(hashFile))
	for i := 1; i < *nhdb; i++ {
		fmt.Fprintf(&hdb, "%x:%d:Lazaret.Bench.Hash.%d\n", randBytes(r, 16), 1+r.IntN(1<<24), i)
	}
	if err := os.WriteFile(filepath.Join(*sigDir, "bench.hdb"), []byte(hdb.String()), 0o644); err != nil {
		return err
	}
	p := filepath.Join(*dataDir, "hash-0.bin")
	if err := os.WriteFile(p, hashFile, 0o644); err != nil {
		return err
	}
	expected = append(expected, p+": Lazaret.Bench.Hash.0"+builtin.UnofficialSuffix+" FOUND")

	buf := make([]byte, *size)
	chacha := rand.NewChaCha8([32]byte(randBytes(r, 32)))
	for i := range *nfiles + *ninfected {
		chacha.Read(buf)
		name := fmt.Sprintf("clean-%02d.bin", i)
		if i >= *nfiles {
			s := sigs[r.IntN(len(sigs))]
			inst := s.inst(r)
			copy(buf[r.IntN(len(buf)-len(inst)):], inst)
			name = fmt.Sprintf("infected-%d.bin", i-*nfiles)
			expected = append(expected, filepath.Join(*dataDir, name)+": "+s.name+builtin.UnofficialSuffix+" FOUND")
		}
		if err := os.WriteFile(filepath.Join(*dataDir, name), buf, 0o644); err != nil {
			return err
		}
	}
	sort.Strings(expected)
	return os.WriteFile(filepath.Join(filepath.Dir(filepath.Clean(*dataDir)), "expected.txt"), []byte(strings.Join(expected, "\n")+"\n"), 0o644)
}

// fileBody is a scan.Body over a file on disk.
type fileBody string

func (f fileBody) Open() (io.ReadCloser, error) { return os.Open(string(f)) }
func (f fileBody) Path() (string, error)        { return string(f), nil }

// scanCmd scans every file under the paths, one at a time as clamscan
// does, and prints clamscan's lines. The exit code is clamscan's: 1 if
// something was found, 2 on an error.
func scanCmd(args []string) (int, error) {
	fl := flag.NewFlagSet("scan", flag.ContinueOnError)
	sigDir := fl.String("d", "", "signature folder")
	if err := fl.Parse(args); err != nil {
		return 2, err
	}
	e, err := builtin.New(builtin.Config{Name: "builtin", SignaturesDir: *sigDir, ReloadInterval: -1}, nil)
	if err != nil {
		return 2, err
	}
	ctx := context.Background()
	code := 0
	for _, root := range fl.Args() {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			res, err := e.Scan(ctx, scan.Sample{Name: path, Size: info.Size(), Body: fileBody(path)})
			res = scan.Normalize(e.Name(), res, err)
			switch res.Verdict {
			case scan.Clean:
				fmt.Printf("%s: OK\n", path)
			case scan.Infected:
				fmt.Printf("%s: %s FOUND\n", path, res.Findings[0].Signature)
				code = max(code, 1)
			default:
				fmt.Printf("%s: ERROR %s\n", path, res.Detail)
				code = 2
			}
			return nil
		})
		if err != nil {
			return 2, err
		}
	}
	return code, nil
}
