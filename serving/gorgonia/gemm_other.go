//go:build !amd64 || purego

package gorgonia

// Without the amd64 kernels every float32 product runs on gonum's BLAS.
var fastGemm = false

func sgemm4x16(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int) {
	panic("unreachable")
}

func sgemm1x64(k int, a *float32, b *float32, ldb int, c *float32) { panic("unreachable") }

func sgemm1x16(k int, a *float32, b *float32, ldb int, c *float32) { panic("unreachable") }

func sgemm6x16(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int) {
	panic("unreachable")
}

func reluAVX2(dst, src *float32, n int) { panic("unreachable") }
