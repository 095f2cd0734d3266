//go:build !amd64 || purego

package simd

func pathFloatKernels(bool) []floatKernel { return nil }

func pathInt8Kernels() []int8Kernel { return nil }
