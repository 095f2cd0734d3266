package rag

import (
	"math"

	"github.com/quiverml/quiver/vector"
)

// MMR picks k of cands by maximal marginal relevance (Carbonell and
// Goldstein, 1998): each step takes the candidate maximising
// lambda*sim(query, c) - (1-lambda)*max sim(c, picked). Similarity is the
// dot product for Cosine and InnerProduct (normalise vectors for cosine)
// and the negated squared distance for L2. Nil candidates are skipped. It
// returns indexes into cands in pick order.
func MMR(query []float32, cands [][]float32, k int, lambda float64, m vector.Metric) []int {
	sim := func(a, b []float32) float64 {
		var s float64
		if m == vector.L2 {
			for i := range a {
				d := float64(a[i] - b[i])
				s -= d * d
			}
			return s
		}
		for i := range a {
			s += float64(a[i]) * float64(b[i])
		}
		return s
	}
	rel := make([]float64, len(cands))
	maxSim := make([]float64, len(cands))
	used := make([]bool, len(cands))
	for i, c := range cands {
		if c == nil {
			used[i] = true
			continue
		}
		rel[i] = sim(query, c)
		maxSim[i] = math.Inf(-1)
	}
	var out []int
	for len(out) < k {
		best, bestScore := -1, math.Inf(-1)
		for i := range cands {
			if used[i] {
				continue
			}
			div := maxSim[i]
			if len(out) == 0 {
				div = 0
			}
			score := lambda*rel[i] - (1-lambda)*div
			if score > bestScore {
				best, bestScore = i, score
			}
		}
		if best < 0 {
			break
		}
		used[best] = true
		out = append(out, best)
		for i := range cands {
			if !used[i] {
				maxSim[i] = math.Max(maxSim[i], sim(cands[i], cands[best]))
			}
		}
	}
	return out
}
