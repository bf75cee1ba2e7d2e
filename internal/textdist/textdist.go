// Package textdist measures how far apart two strings are, for "did you
// mean" suggestions in error messages.
package textdist

import "sort"

// Distance returns the Levenshtein distance between a and b: the fewest
// single-rune insertions, deletions and substitutions that turn a into b.
func Distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			c := prev[j-1]
			if ra[i-1] != rb[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// Nearest returns up to n of candidates closest to s by Distance, closest
// first; candidates at the same distance keep their order in candidates.
func Nearest(s string, candidates []string, n int) []string {
	type scored struct {
		c string
		d int
	}
	all := make([]scored, len(candidates))
	for i, c := range candidates {
		all[i] = scored{c, Distance(s, c)}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].d < all[j].d })
	n = min(max(n, 0), len(all))
	out := make([]string, 0, n)
	for _, x := range all[:n] {
		out = append(out, x.c)
	}
	return out
}
