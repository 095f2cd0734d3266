package gorgonia

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"gonum.org/v1/gonum/blas"
)

// TestSgemmMatchesGonum compares the kernels (and the paths around them:
// transposed b, beta, remainders of rows and columns, k panels) with
// gonum's BLAS on random matrices.
func TestSgemmMatchesGonum(t *testing.T) {
	if !fastGemm {
		t.Log("this CPU has no AVX2+FMA: sgemm is gonum's, compared with itself")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	randf := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	shapes := [][3]int{{1, 1, 1}, {1, 64, 64}, {1, 256, 64}, {1, 70, 300}, {3, 17, 5}, {4, 16, 1}, {5, 33, 257},
		{64, 256, 64}, {64, 1, 256}, {7, 80, 600}, {13, 48, 9}}
	for _, s := range shapes {
		m, n, k := s[0], s[1], s[2]
		for _, tb := range []blas.Transpose{blas.NoTrans, blas.Trans} {
			for _, beta := range []float32{0, 1, 0.5} {
				t.Run(fmt.Sprintf("%dx%dx%d/%c/beta=%g", m, n, k, tb, beta), func(t *testing.T) {
					lda, ldb, ldc := k+3, n+1, n+2
					if tb == blas.Trans {
						ldb = k + 1
					}
					a := randf(m * lda)
					rowsB := k
					if tb == blas.Trans {
						rowsB = n
					}
					b := randf(rowsB * ldb)
					c := randf(m * ldc)
					want := append([]float32(nil), c...)
					blasImpl.Sgemm(blas.NoTrans, tb, m, n, k, 1, a, lda, b, ldb, beta, want, ldc)
					sgemm(blas.NoTrans, tb, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
					for i := 0; i < m; i++ {
						for j := 0; j < ldc; j++ {
							if j >= n {
								require.Equal(t, want[i*ldc+j], c[i*ldc+j], "padding at [%d %d] untouched", i, j)
								continue
							}
							require.InDelta(t, want[i*ldc+j], c[i*ldc+j], 2e-5*float64(k), "[%d %d]", i, j)
						}
					}
				})
			}
		}
	}
}

func BenchmarkSgemm(b *testing.B) {
	for _, s := range [][3]int{{1, 256, 256}, {64, 256, 256}} {
		m, n, k := s[0], s[1], s[2]
		// Random operands: gonum skips the zero elements of a.
		a, bb, c := randomFloats(1, m*k), randomFloats(2, k*n), make([]float32, m*n)
		for _, impl := range []string{"quiver", "gonum"} {
			b.Run(fmt.Sprintf("m=%d/impl=%s", m, impl), func(b *testing.B) {
				for b.Loop() {
					if impl == "gonum" {
						blasImpl.Sgemm(blas.NoTrans, blas.NoTrans, m, n, k, 1, a, k, bb, n, 0, c, n)
					} else {
						sgemm(blas.NoTrans, blas.NoTrans, m, n, k, 1, a, k, bb, n, 0, c, n)
					}
				}
				b.ReportMetric(float64(b.N)*float64(m*n*k)/b.Elapsed().Seconds()/1e9, "GMAC/s")
			})
		}
	}
}

func TestReluKernel(t *testing.T) {
	for _, n := range []int{0, 5, 32, 100} {
		x := randomFloats(uint64(n), n)
		if n > 3 {
			x[3] = float32(math.NaN())
			x[1] = float32(math.Copysign(0, -1))
		}
		out := make([]float32, n)
		relu(out, x)
		for i, v := range x {
			switch {
			case v != v:
				require.True(t, out[i] != out[i], "NaN stays NaN at %d", i)
			case v > 0:
				require.Equal(t, v, out[i])
			default:
				require.Zero(t, out[i], "element %d (%g)", i, v)
			}
		}
	}
}
