package objstore

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// S3's limits on object tags.
const (
	MaxTags        = 10
	maxTagKeyLen   = 128
	maxTagValueLen = 256
)

// ErrTagBudget means the object already carries MaxTags tags of its own,
// leaving no room even for the status tag. Nothing was written; the caller
// reports it.
var ErrTagBudget = errors.New("objstore: no room for the status tag")

// Tag is one object tag lazaret wants to write. An empty Value asks for the
// key's removal: lazaret never writes empty tags, and a stale one (a
// signature left from an earlier infected verdict) must not outlive the
// verdict it described.
type Tag struct {
	Key, Value string
}

// MergeTags returns the tag set to write: existing merged with ours.
//
// Tags in existing whose key is not among ours (nor statusKey) are the
// user's, and are all kept. Existing tags whose key is among ours are
// lazaret's own and are replaced, or removed where ours has an empty Value.
// ours is in order of importance: when the result would exceed MaxTags, the
// status tag (key statusKey) is always written and the other tags of ours
// are dropped from the end of the list until it fits. When the user's tags
// alone fill the budget, so that not even the status tag fits, MergeTags
// returns an error wrapping ErrTagBudget.
//
// MergeTags does not modify its arguments.
func MergeTags(existing map[string]string, ours []Tag, statusKey string) (map[string]string, error) {
	owned := map[string]bool{statusKey: true}
	for _, t := range ours {
		owned[t.Key] = true
	}
	out := make(map[string]string, MaxTags)
	for k, v := range existing {
		if !owned[k] {
			out[k] = v
		}
	}
	users := len(out)

	// The status tag first, whatever its place in ours: it is the one the
	// bucket policy and every reader act on.
	var status *Tag
	for i := range ours {
		if ours[i].Key == statusKey && ours[i].Value != "" {
			status = &ours[i]
			break
		}
	}
	if status != nil {
		if users >= MaxTags {
			return nil, fmt.Errorf("%w: the object has %d tags of its own", ErrTagBudget, users)
		}
		out[status.Key] = status.Value
	}
	for _, t := range ours {
		if t.Key == statusKey || t.Value == "" {
			continue
		}
		if len(out) >= MaxTags {
			break // the remaining optional tags are less important: drop them
		}
		out[t.Key] = t.Value
	}
	return out, nil
}

// SanitizeTagValue makes s a valid S3 tag value: every character outside
// S3's tag character set (ASCII letters and digits, space and + - = . _ : /
// @) becomes '_', surrounding spaces go, and the result is cut to 256
// characters. It returns "" when nothing is left.
//
// The set is the one every S3 implementation accepts; AWS would take other
// Unicode letters too, but MinIO's client refuses them, and a signature
// name is ASCII anyway.
func SanitizeTagValue(s string) string {
	var b strings.Builder
	b.Grow(min(len(s), maxTagValueLen))
	n := 0
	for _, r := range s {
		if n == maxTagValueLen {
			break
		}
		if !validTagRune(r) {
			r = '_'
		}
		b.WriteRune(r)
		n++
	}
	return strings.TrimSpace(b.String())
}

func validTagRune(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	}
	return strings.ContainsRune(" +-=._:/@", r)
}

// validTagText reports whether s is a non-empty run of valid tag
// characters, fit for a tag key.
func validTagText(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !validTagRune(r) {
			return false
		}
	}
	return true
}
