package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
)

// EICAR is the EICAR anti-virus test file.
var EICAR = []byte(`X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`)

// Signature names as clamd and clamscan report them for the test
// signatures (unofficial databases get ".UNOFFICIAL").
const (
	EICARSignature = "Eicar-Test-Signature"
	HSBSignature   = "Lazaret.Test.HSB"
	NDBSignature   = "Lazaret.Test.NDB"
)

// Unofficial appends clamd's suffix for signatures from custom databases.
func Unofficial(name string) string { return name + ".UNOFFICIAL" }

// Deterministic returns n pseudo-random bytes determined by seed.
func Deterministic(seed string, n int) []byte {
	out := make([]byte, 0, n+32)
	for i := 0; len(out) < n; i++ {
		s := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", seed, i)))
		out = append(out, s[:]...)
	}
	return out[:n]
}

// HSBSample is a 4 KiB file whose SHA-256 is in the test .hsb database.
func HSBSample() []byte { return Deterministic("lazaret-hsb-sample", 4096) }

// ndbMarker is what the test .ndb signature matches: a static run, a
// bounded gap, another run, a one-byte wildcard, an alternation, a tail.
const ndbPattern = "4c617a617265742d6d61726b6572{4-8}deadbeef??(aa|bb)cafe"

// NDBSample is an 8 KiB file that the test .ndb signature matches at
// offset 1000: "Lazaret-marker", 6 filler bytes, DE AD BE EF, one byte,
// BB, CA FE.
func NDBSample() []byte {
	b := Deterministic("lazaret-ndb-sample", 8192)
	marker := append([]byte("Lazaret-marker"), 1, 2, 3, 4, 5, 6, 0xde, 0xad, 0xbe, 0xef, 0x42, 0xbb, 0xca, 0xfe)
	copy(b[1000:], marker)
	return b
}

// Signatures returns the test signature database files by name.
func Signatures() map[string]string {
	hsb := sha256.Sum256(HSBSample())
	return map[string]string{
		"lazaret-test.hdb": "44d88612fea8a8f36de82e1278abb02f:68:" + EICARSignature + "\n",
		"lazaret-test.hsb": hex.EncodeToString(hsb[:]) + ":4096:" + HSBSignature + "\n",
		"lazaret-test.ndb": NDBSignature + ":0:*:" + ndbPattern + "\n",
	}
}

// WriteSignatures writes Signatures into dir.
func WriteSignatures(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, body := range Signatures() {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}
