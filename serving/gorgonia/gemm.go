package gorgonia

import (
	"fmt"
	"sync"

	"github.com/quiverml/quiver/internal/simd"
	"gonum.org/v1/gonum/blas"
)

// sgemm is BLAS's Sgemm (row-major): c = alpha op(a) op(b) + beta c. The
// products the models of this engine are made of (alpha 1, a not
// transposed) run on AVX2+FMA kernels where the CPU has them; the rest on
// gonum's pure-Go BLAS.
func sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if !fastGemm || tA != blas.NoTrans || alpha != 1 || m == 0 || n == 0 || k == 0 {
		blasImpl.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		switch beta {
		case 0:
			clear(row)
		case 1:
		default:
			scale(row, beta)
		}
	}
	if tB == blas.NoTrans {
		sgemmAcc(m, n, k, a, lda, b, ldb, c, ldc)
		return
	}
	if m <= 4 {
		// A few rows against b's rows: one dot product per element.
		for i := 0; i < m; i++ {
			ar := a[i*lda : i*lda+k]
			for j := 0; j < n; j++ {
				c[i*ldc+j] += simd.Dot(ar, b[j*ldb:j*ldb+k])
			}
		}
		return
	}
	// Many rows: lay b out untransposed once, then run the kernels.
	p := transposed.Get().(*[]float32)
	if cap(*p) < k*n {
		*p = make([]float32, k*n)
	}
	bt := (*p)[:k*n]
	for j := 0; j < n; j++ {
		src := b[j*ldb : j*ldb+k]
		for l, v := range src {
			bt[l*n+j] = v
		}
	}
	sgemmAcc(m, n, k, a, lda, bt, n, c, ldc)
	transposed.Put(p)
}

var transposed = sync.Pool{New: func() any { return new([]float32) }}

// sgemmAcc computes c += a b for row-major a (m x k), b (k x n) and c
// (m x n) with the assembly kernels: blocks of 6x16 and 4x16, 1x64 for
// fewer than 4 rows and 1x16 for rows left over, and dot products for
// columns left over. k is split into panels of 256 so that the panel of b
// a block reads stays in cache.
func sgemmAcc(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if len(a) < (m-1)*lda+k || len(b) < (k-1)*ldb+n || len(c) < (m-1)*ldc+n {
		panic(fmt.Sprintf("sgemmAcc: slices too short for %dx%dx%d", m, n, k))
	}
	const kc = 256
	for p0 := 0; p0 < k; p0 += kc {
		kb := min(kc, k-p0)
		j := 0
		if m < 4 {
			for ; j+64 <= n; j += 64 {
				for i := 0; i < m; i++ {
					sgemm1x64(kb, &a[i*lda+p0], &b[p0*ldb+j], ldb, &c[i*ldc+j])
				}
			}
		}
		for ; j+16 <= n; j += 16 {
			i := 0
			for ; i+6 <= m; i += 6 {
				sgemm6x16(kb, &a[i*lda+p0], lda, &b[p0*ldb+j], ldb, &c[i*ldc+j], ldc)
			}
			for ; i+4 <= m; i += 4 {
				sgemm4x16(kb, &a[i*lda+p0], lda, &b[p0*ldb+j], ldb, &c[i*ldc+j], ldc)
			}
			for ; i < m; i++ {
				sgemm1x16(kb, &a[i*lda+p0], &b[p0*ldb+j], ldb, &c[i*ldc+j])
			}
		}
		// Columns left over, fewer than 16: a dot product per element,
		// with simd's dot kernel when the column is contiguous (b has one
		// column, as a regression head does).
		for x := j; x < n; x++ {
			for i := 0; i < m; i++ {
				ar := a[i*lda+p0 : i*lda+p0+kb]
				if ldb == 1 {
					c[i*ldc+x] += simd.Dot(ar, b[p0:p0+kb])
					continue
				}
				var s float32
				for l, av := range ar {
					s += av * b[(p0+l)*ldb+x]
				}
				c[i*ldc+x] += s
			}
		}
	}
}
