package vector

import (
	"math"
	"math/rand/v2"
)

// clustered returns n deterministic vectors of dimension dim drawn from
// Gaussian clusters with varied spreads and per-dimension scales, plus nq
// queries drawn from the same distribution.
func clustered(n, nq, dim, clusters int, seed uint64) (data, queries [][]float32) {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	centers := make([][]float32, clusters)
	spreads := make([][]float32, clusters)
	for c := range centers {
		centers[c] = make([]float32, dim)
		spreads[c] = make([]float32, dim)
		base := 0.05 + r.Float64()*0.6 // varied spread per cluster
		for j := 0; j < dim; j++ {
			centers[c][j] = float32(r.NormFloat64())
			spreads[c][j] = float32(base * (0.5 + r.Float64())) // anisotropic
		}
	}
	gen := func(m int) [][]float32 {
		out := make([][]float32, m)
		slab := make([]float32, m*dim)
		for i := range out {
			c := int(math.Abs(r.NormFloat64()*float64(clusters)/3)) % clusters // uneven sizes
			v := slab[i*dim : (i+1)*dim : (i+1)*dim]
			for j := range v {
				v[j] = centers[c][j] + spreads[c][j]*float32(r.NormFloat64())
			}
			out[i] = v
		}
		return out
	}
	return gen(n), gen(nq)
}

// groundTruth returns the ids (indexes into data) of the k nearest
// vectors to each query by exact scan.
func groundTruth(data, queries [][]float32, k int, m Metric) [][]int {
	dist := distFunc(m)
	norm := func(v []float32) []float32 {
		if m != Cosine {
			return v
		}
		out, _ := checkVector(v, len(v), Cosine)
		return out
	}
	nd := make([][]float32, len(data))
	for i := range data {
		nd[i] = norm(data[i])
	}
	out := make([][]int, len(queries))
	for qi, q := range queries {
		q = norm(q)
		var h maxHeap
		for i, v := range nd {
			d := dist(q, v)
			if len(h) < k {
				h.push(cand{d, uint32(i)})
			} else if d < h.top().d {
				h.pop()
				h.push(cand{d, uint32(i)})
			}
		}
		ids := make([]int, len(h))
		for i := len(ids) - 1; i >= 0; i-- {
			ids[i] = int(h.pop().id)
		}
		out[qi] = ids
	}
	return out
}

// recallAt returns |got ∩ want| / |want| averaged over queries.
func recallAt(got [][]uint64, want [][]int) float64 {
	hit, total := 0, 0
	for i := range want {
		set := make(map[uint64]bool, len(got[i]))
		for _, id := range got[i] {
			set[id] = true
		}
		for _, id := range want[i] {
			if set[uint64(id)] {
				hit++
			}
		}
		total += len(want[i])
	}
	return float64(hit) / float64(total)
}
