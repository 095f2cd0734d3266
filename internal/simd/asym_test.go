package simd

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestF32Int8KernelsMatchReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, p := range kernelPaths() {
		t.Run(p.name, func(t *testing.T) {
			usePath(t, p)
			for _, n := range []int{0, 1, 3, 7, 8, 9, 15, 16, 17, 23, 24, 31, 32, 33, 63, 64, 65, 79, 80, 100, 128, 384, 385, 391} {
				a := make([]float32, n)
				b := make([]int8, n+3) // longer b: only len(a) is read
				for i := range a {
					a[i] = float32(r.NormFloat64())
				}
				for i := range b {
					b[i] = int8(r.IntN(255) - 127)
				}
				scale := float32(0.013)
				var dot, l2, mag float64
				for i := range a {
					dot += float64(a[i]) * float64(b[i])
					d := float64(a[i]) - float64(scale)*float64(b[i])
					l2 += d * d
					mag += math.Abs(float64(a[i]) * float64(b[i]))
				}
				if got := float64(DotF32Int8(a, b)); math.Abs(got-dot) > 1e-5*(mag+1) {
					t.Errorf("n=%d: DotF32Int8 = %v, want %v", n, got, dot)
				}
				if got := float64(L2F32Int8(a, b, scale)); math.Abs(got-l2) > 1e-5*(l2+1) {
					t.Errorf("n=%d: L2F32Int8 = %v, want %v", n, got, l2)
				}
			}
		})
	}
}
