//go:build !amd64 || purego

package simd

import "unsafe"

// Convert reports whether the conversion kernels run: never in a build
// without them.
const Convert = false

func unsafePointer[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }

func f16FromF32Asm(*uint16, *float32, int)  {}
func f16ToF32Asm(*float32, *uint16, int)    {}
func bf16FromF32Asm(*uint16, *float32, int) {}
func bf16ToF32Asm(*float32, *uint16, int)   {}

func quantize(*int8, *float32, int, float32, float32, float32, int32, bool) int { return 0 }

func dequantizeAsm(*float32, *int8, int, float32, int32, bool) {}

func quantizeChannels(*int8, *float32, *float32, *int8, bool, int, bool) int { return 0 }

func dequantizeChannels(*float32, *int8, *float32, *int8, bool, int, bool) {}

func quantizeInt4(*byte, *float32, *float32, int, int) int { return 0 }

func dequantizeInt4(*float32, *byte, *float32, int, int) {}
