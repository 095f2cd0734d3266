package vector

import (
	"math"

	"github.com/quiverml/quiver/internal/simd"
)

// distFunc returns the distance function for m. Cosine vectors are stored
// normalised, so cosine distance is 1 - dot.
func distFunc(m Metric) func(a, b []float32) float32 {
	switch m {
	case Cosine:
		return func(a, b []float32) float32 { return 1 - simd.Dot(a, b) }
	case InnerProduct:
		return func(a, b []float32) float32 { return -simd.Dot(a, b) }
	default:
		return simd.L2Sq
	}
}

func norm(v []float32) float32 { return float32(math.Sqrt(float64(dotGo(v, v)))) }
