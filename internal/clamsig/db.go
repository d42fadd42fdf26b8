// Package clamsig reads ClamAV signature databases (.hdb, .hsb, .ndb) and
// matches them against a stream of bytes in one pass with bounded memory.
//
// A DB holds parsed signatures; Compile turns it into a Matcher, which is
// immutable and safe for concurrent use. Each scan gets its own Scanner,
// fed with the sample's bytes in chunks of any size, and reports the
// signatures that matched.
//
// Body signatures (.ndb) are split into parts at their unbounded wildcards
// ("*", "{n-}"). Every part matches a bounded number of bytes and has a
// static anchor of four bytes (two or three if it has no longer static
// run). One pass over the data looks the anchors up at every position (see
// anchorIndex), and the wildcards around each hit are verified in a window
// that holds only as much history and look-ahead as the longest part
// needs. The parts of one signature are chained by remembering, per
// signature and part, the earliest end of a chain so far, never by
// buffering the data between them: hits arrive in order of position, and
// a part can only follow parts whose anchors came earlier. Hash signatures
// (.hdb, .hsb) are checked at the end; a hash is computed only when some
// signature of that kind has the sample's size or any size.
package clamsig

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Limits on signature files, so that a broken or hostile file cannot make
// lazaret spend unbounded memory.
const (
	// MaxLineLength is the longest line accepted in a signature file.
	MaxLineLength = 64 << 10
	// MaxSignatures is the most signatures one Load or Parse call keeps.
	MaxSignatures = 10_000_000
	// MaxBodySignatures is the most body signatures one DB may compile.
	MaxBodySignatures = 1_000_000
)

// maxSignatures is MaxSignatures, lowered by tests.
var maxSignatures = MaxSignatures

// ErrTooManySignatures is reported (wrapped in a *LineError) when a load
// reaches MaxSignatures; the rest of the input is ignored.
var ErrTooManySignatures = errors.New("too many signatures")

// HashAlgo names the hash of a hash signature.
type HashAlgo uint8

// The hash algorithms, told apart by the length of the hex digest.
const (
	MD5 HashAlgo = iota
	SHA1
	SHA256
)

// String returns "md5", "sha1" or "sha256".
func (a HashAlgo) String() string {
	switch a {
	case MD5:
		return "md5"
	case SHA1:
		return "sha1"
	case SHA256:
		return "sha256"
	}
	return "hash(" + strconv.Itoa(int(a)) + ")"
}

// AnySize is the Size of a hash signature that matches files of any size
// (written "*" in the file).
const AnySize = -1

// HashSig is a whole-file hash signature from an .hdb or .hsb file.
type HashSig struct {
	Name string
	Algo HashAlgo
	Sum  []byte
	// Size is the file size the signature applies to, or AnySize.
	Size int64
	// Source is "file:line", for messages.
	Source string
}

// Offset says where a body signature may start.
type Offset struct {
	// Any is true for "*": anywhere.
	Any bool
	// FromEOF is true for "EOF-n": N counts back from the end of the file.
	FromEOF bool
	// N is the start (or the distance back from the end) and Shift the
	// extra bytes the start may move forward ("n,shift").
	N, Shift int64
}

// String returns the offset as written in an .ndb file.
func (o Offset) String() string {
	if o.Any {
		return "*"
	}
	s := strconv.FormatInt(o.N, 10)
	if o.FromEOF {
		s = "EOF-" + s
	}
	if o.Shift > 0 {
		s += "," + strconv.FormatInt(o.Shift, 10)
	}
	return s
}

// BodySig is a body signature from an .ndb file.
type BodySig struct {
	Name string
	// Target is ClamAV's target type; only 0 (any file) is supported.
	Target int
	Offset Offset
	// Hex is the signature as written.
	Hex    string
	Source string

	pat *pattern
}

// DB is a set of parsed signatures.
type DB struct {
	Hashes []HashSig
	Bodies []BodySig
}

// Len is the number of signatures in db.
func (db *DB) Len() int { return len(db.Hashes) + len(db.Bodies) }

// Add appends other's signatures to db.
func (db *DB) Add(other *DB) {
	db.Hashes = append(db.Hashes, other.Hashes...)
	db.Bodies = append(db.Bodies, other.Bodies...)
}

// LineError is a malformed line in a signature file.
type LineError struct {
	File string
	Line int
	Err  error
}

// Error returns "file:line: problem".
func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }

// Unwrap returns the problem.
func (e *LineError) Unwrap() error { return e.Err }

// ParseFunc parses one signature file; file names it in errors.
type ParseFunc func(r io.Reader, file string) (*DB, []error)

// Parser returns the parser for a signature file by its extension (.hdb,
// .hsb, .ndb, in any case), or nil when name is not a signature file this
// package reads.
func Parser(name string) ParseFunc {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".hdb":
		return ParseHDB
	case ".hsb":
		return ParseHSB
	case ".ndb":
		return ParseNDB
	}
	return nil
}

// Load reads every .hdb, .hsb and .ndb file in dir (not its subfolders)
// in name order; other files are ignored. Malformed lines are returned as
// errors (*LineError, naming the file and line) and do not stop the other
// lines and files loading. An unreadable folder or file is an error too; a
// nil DB is returned only when dir itself cannot be read.
func Load(dir string) (*DB, []error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, []error{fmt.Errorf("clamsig: read signatures: %w", err)}
	}
	db := &DB{}
	var errs []error
	for _, ent := range ents { // ReadDir sorts by name
		parse := Parser(ent.Name())
		if parse == nil || ent.IsDir() {
			continue
		}
		f, err := os.Open(filepath.Join(dir, ent.Name()))
		if err != nil {
			errs = append(errs, fmt.Errorf("clamsig: %w", err))
			continue
		}
		one, ferrs := parse(f, ent.Name())
		f.Close()
		errs = append(errs, ferrs...)
		if db.Len()+one.Len() > maxSignatures {
			errs = append(errs, &LineError{ent.Name(), 1, fmt.Errorf("%w: more than %d in the folder", ErrTooManySignatures, maxSignatures)})
			break
		}
		db.Add(one)
	}
	return db, errs
}

// ParseHDB parses an .hdb file: "HASH:SIZE:Name" lines, where SIZE may be
// "*". Like ClamAV, the hash kind follows from its length (MD5, SHA1 or
// SHA256), so .hdb and .hsb share a parser. file names the input in errors.
func ParseHDB(r io.Reader, file string) (*DB, []error) { return parseLines(r, file, parseHashLine) }

// ParseHSB parses an .hsb file: "SHA1-or-SHA256:SIZE:Name" lines (an MD5
// is accepted too, as ClamAV does).
func ParseHSB(r io.Reader, file string) (*DB, []error) { return parseLines(r, file, parseHashLine) }

// ParseNDB parses an .ndb file:
// "Name:TargetType:Offset:HexSig[:MinFL[:MaxFL]]" lines.
func ParseNDB(r io.Reader, file string) (*DB, []error) { return parseLines(r, file, parseNDBLine) }

// parseLines reads r line by line; blank lines and "#" comments are
// skipped. A line longer than MaxLineLength is an error and skipped.
func parseLines(r io.Reader, file string, parse func(db *DB, line, src string) error) (*DB, []error) {
	db := &DB{}
	var errs []error
	br := bufio.NewReaderSize(r, MaxLineLength+2)
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			errs = append(errs, &LineError{file, n, fmt.Errorf("line longer than %d bytes", MaxLineLength)})
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil && err != io.EOF {
				errs = append(errs, &LineError{file, n, fmt.Errorf("read: %w", err)})
			}
			if err != nil {
				break
			}
			continue
		}
		if len(line) > 0 {
			s := string(bytes.TrimRight(line, "\r\n"))
			if strings.TrimSpace(s) != "" && s[0] != '#' {
				if db.Len() >= maxSignatures {
					errs = append(errs, &LineError{file, n, fmt.Errorf("%w: more than %d", ErrTooManySignatures, maxSignatures)})
					break
				}
				if perr := parse(db, s, file+":"+strconv.Itoa(n)); perr != nil {
					errs = append(errs, &LineError{file, n, perr})
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			errs = append(errs, &LineError{file, n, fmt.Errorf("read: %w", err)})
			break
		}
	}
	return db, errs
}

func parseHashLine(db *DB, line, src string) error {
	f := strings.Split(line, ":")
	if len(f) < 3 || len(f) > 4 {
		return fmt.Errorf("want HASH:SIZE:NAME, got %d fields", len(f))
	}
	var algo HashAlgo
	switch len(f[0]) {
	case 32:
		algo = MD5
	case 40:
		algo = SHA1
	case 64:
		algo = SHA256
	default:
		return fmt.Errorf("hash of %d hex digits is not MD5, SHA1 or SHA256", len(f[0]))
	}
	sum, err := hex.DecodeString(f[0])
	if err != nil {
		return errors.New("hash is not hex")
	}
	size := int64(AnySize)
	if f[1] != "*" {
		size, err = strconv.ParseInt(f[1], 10, 64)
		if err != nil || size < 0 || f[1][0] == '+' {
			return fmt.Errorf("bad size %q", f[1])
		}
	}
	if err := checkName(f[2]); err != nil {
		return err
	}
	if len(f) == 4 {
		if _, err := strconv.ParseUint(f[3], 10, 32); err != nil {
			return fmt.Errorf("bad functionality level %q", f[3])
		}
	}
	db.Hashes = append(db.Hashes, HashSig{Name: f[2], Algo: algo, Sum: sum, Size: size, Source: src})
	return nil
}

func checkName(name string) error {
	if name == "" {
		return errors.New("empty signature name")
	}
	for _, c := range []byte(name) {
		if c < 0x20 || c == 0x7f {
			return errors.New("control character in signature name")
		}
	}
	return nil
}

func parseNDBLine(db *DB, line, src string) error {
	f := strings.Split(line, ":")
	if len(f) < 4 || len(f) > 6 {
		return fmt.Errorf("want Name:TargetType:Offset:HexSig[:MinFL[:MaxFL]], got %d fields", len(f))
	}
	if err := checkName(f[0]); err != nil {
		return err
	}
	target, err := strconv.Atoi(f[1])
	if err != nil || target < 0 {
		return fmt.Errorf("bad target type %q", f[1])
	}
	if target != 0 {
		return fmt.Errorf("target type %d is not supported (only 0, any file)", target)
	}
	off, err := parseOffset(f[2])
	if err != nil {
		return err
	}
	for _, fl := range f[4:] {
		if _, err := strconv.ParseUint(fl, 10, 32); fl != "" && err != nil {
			return fmt.Errorf("bad functionality level %q", fl)
		}
	}
	pat, err := parsePattern(f[3])
	if err != nil {
		return err
	}
	db.Bodies = append(db.Bodies, BodySig{Name: f[0], Target: target, Offset: off, Hex: f[3], Source: src, pat: pat})
	return nil
}

// maxOffset bounds offsets so that offset arithmetic cannot overflow.
const maxOffset = 1 << 50

func parseOffset(s string) (Offset, error) {
	if s == "*" {
		return Offset{Any: true}, nil
	}
	var o Offset
	base, shift, hasShift := strings.Cut(s, ",")
	num := func(t string) (int64, error) {
		n, err := strconv.ParseInt(t, 10, 64)
		if err != nil || n < 0 || n > maxOffset || t == "" || t[0] == '+' {
			return 0, fmt.Errorf("bad offset %q", s)
		}
		return n, nil
	}
	var err error
	if rest, ok := strings.CutPrefix(base, "EOF-"); ok {
		o.FromEOF = true
		base = rest
	} else if !(base != "" && base[0] >= '0' && base[0] <= '9') {
		return o, fmt.Errorf("offset %q is not supported (only *, n, EOF-n, with an optional ,shift)", s)
	}
	if o.N, err = num(base); err != nil {
		return o, err
	}
	if hasShift {
		if o.Shift, err = num(shift); err != nil {
			return o, err
		}
	}
	return o, nil
}

// Describe returns a one-line summary of db for logs: counts by kind.
func (db *DB) Describe() string {
	counts := map[string]int{}
	for _, h := range db.Hashes {
		counts[h.Algo.String()]++
	}
	counts["body"] = len(db.Bodies)
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	for i, k := range keys {
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%s=%d", k, counts[k])
	}
	return sb.String()
}

// ModTime returns the newest modification time of the regular files in a
// signature folder (hidden files and subfolders aside): when its
// signatures last changed, as far as the file system tells.
func ModTime(dir string) (time.Time, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return time.Time{}, fmt.Errorf("clamsig: %w", err)
	}
	var newest time.Time
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		if fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
	}
	return newest, nil
}
