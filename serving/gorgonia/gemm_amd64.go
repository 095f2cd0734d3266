//go:build amd64 && !purego

package gorgonia

import "golang.org/x/sys/cpu"

// AVX2+FMA kernels (gemm_amd64.s). They read and write exactly the blocks
// their comments describe and check nothing: sgemmAcc checks the extents.

//go:noescape
func sgemm4x16(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int)

//go:noescape
func sgemm6x16(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int)

//go:noescape
func reluAVX2(dst, src *float32, n int)

//go:noescape
func sgemm1x64(k int, a *float32, b *float32, ldb int, c *float32)

//go:noescape
func sgemm1x16(k int, a *float32, b *float32, ldb int, c *float32)

// fastGemm reports whether the CPU runs the assembly kernels. Tests clear
// it to compare them with gonum's BLAS.
var fastGemm = cpu.X86.HasAVX2 && cpu.X86.HasFMA
