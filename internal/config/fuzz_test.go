package config

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"testing"
)

// maxByteSize is the largest size ParseByteSize accepts: 2^62 bytes.
const maxByteSize = 1 << 62

// byteUnits are the suffixes ParseByteSize reads, with their multipliers.
var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"", 1}, {"B", 1}, {"b", 1},
	{"K", 1 << 10}, {"KB", 1 << 10}, {"KiB", 1 << 10}, {"kib", 1 << 10}, {" k", 1 << 10},
	{"M", 1 << 20}, {"MB", 1 << 20}, {"MiB", 1 << 20}, {"m", 1 << 20},
	{"G", 1 << 30}, {"GB", 1 << 30}, {"GiB", 1 << 30}, {"g ", 1 << 30},
	{"T", 1 << 40}, {"TB", 1 << 40}, {"TiB", 1 << 40}, {"t", 1 << 40},
}

// FuzzParseByteSize checks ParseByteSize on any string s, and against an
// exact model on the number n with the unit byteUnits[unit]:
//
//   - a success is in [0, maxByteSize], never a negative or wrapped value;
//   - a success written back as plain bytes, and in every unit that
//     divides it, parses to the same value;
//   - an error returns 0 and quotes the input;
//   - n with a unit parses to exactly n times the unit when that is at
//     most maxByteSize, and is an error otherwise (no silent overflow).
func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{
		"0", "1048576", "64K", "200MiB", "2G", "2GB", "1t", " 5 M ", "", "-1", "1X", "99999999999T",
		"4194304T", "4194305T", "4611686018427387904", "4611686018427387905", "9223372036854775807",
		"9223372036854775808", "+5", "-0", "1.5G", "0x10", "1_000", "KiB", "B", "1iB", "1BIB", "1 K iB",
	} {
		f.Add(s, uint64(0), uint8(0))
	}
	f.Add("", uint64(4194304), uint8(16))              // 2^62 exactly, in T
	f.Add("", uint64(4194305), uint8(16))              // just over, in T
	f.Add("", uint64(1<<62), uint8(0))                 // 2^62 exactly, in bytes
	f.Add("", uint64(1<<63), uint8(0))                 // over int64
	f.Add("", uint64(18446744073709551615), uint8(12)) // the largest uint64, in G
	f.Add("", uint64(9007199254740993), uint8(3))      // 2^53+1 K: 2^63+2^10 would wrap negative
	f.Add("", uint64(16), uint8(255))                  // unit index wraps around
	f.Fuzz(func(t *testing.T, s string, n uint64, unit uint8) {
		v, err := ParseByteSize(s)
		if err != nil {
			if v != 0 || !strings.Contains(err.Error(), strconv.Quote(s)) {
				t.Fatalf("ParseByteSize(%q) = %d, %v; want 0 and an error quoting the input", s, v, err)
			}
		} else {
			if v < 0 || v > maxByteSize {
				t.Fatalf("ParseByteSize(%q) = %d: out of [0, 2^62]", s, v)
			}
			checkByteSizeForms(t, v)
		}

		u := byteUnits[int(unit)%len(byteUnits)]
		in := strconv.FormatUint(n, 10) + u.suffix
		want := new(big.Int).Mul(new(big.Int).SetUint64(n), big.NewInt(u.mult))
		v, err = ParseByteSize(in)
		if want.Cmp(big.NewInt(maxByteSize)) > 0 {
			if err == nil || v != 0 {
				t.Fatalf("ParseByteSize(%q) = %d, %v; want an error: %s bytes is too large", in, v, err, want)
			}
			return
		}
		if err != nil || v != want.Int64() {
			t.Fatalf("ParseByteSize(%q) = %d, %v; want %s", in, v, err, want)
		}
	})
}

// checkByteSizeForms checks that v, written as plain bytes and in each
// unit that divides it, parses back to v.
func checkByteSizeForms(t *testing.T, v int64) {
	t.Helper()
	forms := []string{strconv.FormatInt(v, 10)}
	for _, u := range byteUnits {
		if v%u.mult == 0 {
			forms = append(forms, fmt.Sprintf("%d%s", v/u.mult, u.suffix))
		}
	}
	for _, s := range forms {
		if got, err := ParseByteSize(s); err != nil || got != v {
			t.Fatalf("ParseByteSize(%q) = %d, %v; want %d", s, got, err, v)
		}
	}
}
