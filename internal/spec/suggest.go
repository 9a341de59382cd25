package spec

import (
	"fmt"
	"strings"
)

// suggest returns the candidate closest to word by edit distance, if it is close
// enough to be a plausible typo, or "" when none is.
func suggest(word string, candidates []string) string {
	best, bestDist := "", -1
	lw := strings.ToLower(word)
	for _, c := range candidates {
		if c == word {
			continue
		}
		if strings.ToLower(c) == lw {
			return c
		}
		// Limit the distance to a third of the longer word (at least 1), so
		// that "x" does not suggest "name".
		limit := max(len([]rune(c)), len([]rune(word)))/3 + 1
		if limit > 3 {
			limit = 3
		}
		d := editDistance(lw, strings.ToLower(c), limit)
		if d <= limit && (bestDist < 0 || d < bestDist) {
			best, bestDist = c, d
		}
	}
	return best
}

// didYouMean formats suggest's answer as a hint, or returns fallback.
func didYouMean(word string, candidates []string, fallback string) string {
	if s := suggest(word, candidates); s != "" {
		return fmt.Sprintf("did you mean %q?", s)
	}
	return fallback
}

// editDistance is the Levenshtein distance between a and b (in runes), or a
// value greater than limit once it is known to exceed limit.
func editDistance(a, b string, limit int) int {
	ra, rb := []rune(a), []rune(b)
	if d := len(ra) - len(rb); d > limit || -d > limit {
		return limit + 1
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin > limit {
			return limit + 1
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
