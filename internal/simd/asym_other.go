//go:build !amd64 || purego

package simd

// DotF32Int8 is DotF32Int8Go on this build.
func DotF32Int8(a []float32, b []int8) float32 { return DotF32Int8Go(a, b) }

// L2F32Int8 is L2F32Int8Go on this build.
func L2F32Int8(a []float32, b []int8, scale float32) float32 { return L2F32Int8Go(a, b, scale) }
