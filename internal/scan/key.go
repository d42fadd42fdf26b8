package scan

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
)

// EngineVersion names an engine and the version it reported.
type EngineVersion struct {
	Name    string
	Version string
}

// EnginesKey returns the verdict cache key part for a set of engines and
// versions: a hex SHA-256 over the sorted name=version pairs. Changing any
// engine's version, or the set of engines, changes the key.
func EnginesKey(vs []EngineVersion) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = v.Name + "=" + v.Version
	}
	sort.Strings(parts)
	sum := sha256.Sum256([]byte(strings.Join(parts, "\n")))
	return hex.EncodeToString(sum[:])
}
