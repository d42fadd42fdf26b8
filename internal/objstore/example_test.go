package objstore_test

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/lazaret/lazaret/internal/objstore"
)

// MergeTags keeps every user tag and gives lazaret's tags the room that
// is left, the status tag first.
func ExampleMergeTags() {
	existing := map[string]string{
		"u1": "a", "u2": "b", "u3": "c", "u4": "d", "u5": "e", "u6": "f", "u7": "g", "u8": "h",
		"lazaret-status": "pending",
	}
	ours := []objstore.Tag{
		{Key: "lazaret-status", Value: "infected"},
		{Key: "lazaret-signature", Value: objstore.SanitizeTagValue("Win.Test (x)")},
		{Key: "lazaret-scanned-at", Value: "2026-11-23T10:00:00Z"}, // no room left: dropped
	}
	merged, err := objstore.MergeTags(existing, ours, "lazaret-status")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, k := range slices.Sorted(maps.Keys(merged)) {
		if k[0] == 'l' {
			fmt.Printf("%s=%s\n", k, merged[k])
		}
	}
	fmt.Println(len(merged), "tags")

	// Ten tags of the user's own leave no room even for the status.
	delete(existing, "lazaret-status")
	existing["u9"], existing["u10"] = "i", "j"
	_, err = objstore.MergeTags(existing, ours, "lazaret-status")
	fmt.Println(errors.Is(err, objstore.ErrTagBudget))
	// Output:
	// lazaret-signature=Win.Test _x_
	// lazaret-status=infected
	// 10 tags
	// true
}
