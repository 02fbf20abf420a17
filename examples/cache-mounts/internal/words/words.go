// Package words is a second package, so an edit to main.go recompiles main only.
package words

import (
	"sort"
	"strings"
)

// Count returns "word=count" pairs for the words of s, most frequent first.
func Count(s string) []string {
	counts := map[string]int{}
	for _, w := range strings.Fields(strings.ToLower(s)) {
		counts[strings.Trim(w, ".,!?")]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if counts[keys[i]] != counts[keys[j]] {
			return counts[keys[i]] > counts[keys[j]]
		}
		return keys[i] < keys[j]
	})
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+strings.Repeat("*", counts[k]))
	}
	return out
}
