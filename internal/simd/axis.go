package simd

// Per-channel kernels for the last axis of a tensor (MatMul weights [K, N]
// quantized per output column, say): element i of a row uses scales[i] and
// zps[i], loaded beside the data 8 or 16 at a time. A caller walks the
// rows; a layout whose channels are runs of 8 or more elements uses the
// per-tensor kernels once per run instead.

// zeroPoints returns the pointer the kernels read zero points from and
// whether to advance it: nil zero points read from a zero vector that
// stays put.
func zeroPoints[T int8 | uint8](zps []T) (*int8, bool) {
	if zps == nil {
		return &zeroZP[0], false
	}
	return (*int8)(unsafePointer(&zps[0])), true
}

// zeroZP stands in for absent zero points.
var zeroZP [16]int8

// channelsLen is the prefix the channel kernels convert: the common length
// of their operands (zps only when non-nil), rounded down to 8.
func channelsLen(n, scales, zps int, hasZP bool) int {
	n = min(n, scales)
	if hasZP {
		n = min(n, zps)
	}
	return n &^ 7
}

// QuantizeInt8Channels writes
//
//	int8(saturate(round-half-even(x[i]/scales[i]) + zps[i]))
//
// into dst, with the division in float32, over a prefix of the operands'
// common length, and returns its length. zps may be nil (all zero). Like
// QuantizeInt8 it stops before the first group of 8 that holds a NaN
// quotient and returns 0 when the CPU lacks the instructions.
func QuantizeInt8Channels(dst []int8, x, scales []float32, zps []int8) int {
	n := channelsLen(min(len(dst), len(x)), len(scales), len(zps), zps != nil)
	if !Convert || n == 0 {
		return 0
	}
	zp, step := zeroPoints(zps)
	return quantizeChannels(&dst[0], &x[0], &scales[0], zp, step, n, false)
}

// QuantizeUint8Channels is QuantizeInt8Channels for uint8 codes.
func QuantizeUint8Channels(dst []uint8, x, scales []float32, zps []uint8) int {
	n := channelsLen(min(len(dst), len(x)), len(scales), len(zps), zps != nil)
	if !Convert || n == 0 {
		return 0
	}
	zp, step := zeroPoints(zps)
	return quantizeChannels((*int8)(unsafePointer(&dst[0])), &x[0], &scales[0], zp, step, n, true)
}

// DequantizeInt8Channels writes float32(int32(q[i]) - zps[i]) * scales[i]
// into dst over a prefix of the operands' common length and returns its
// length (0 without the instructions). zps may be nil (all zero).
func DequantizeInt8Channels(dst []float32, q []int8, scales []float32, zps []int8) int {
	n := channelsLen(min(len(dst), len(q)), len(scales), len(zps), zps != nil)
	if !Convert || n == 0 {
		return 0
	}
	zp, step := zeroPoints(zps)
	dequantizeChannels(&dst[0], &q[0], &scales[0], zp, step, n, false)
	return n
}

// DequantizeUint8Channels is DequantizeInt8Channels for uint8 codes.
func DequantizeUint8Channels(dst []float32, q []uint8, scales []float32, zps []uint8) int {
	n := channelsLen(min(len(dst), len(q)), len(scales), len(zps), zps != nil)
	if !Convert || n == 0 {
		return 0
	}
	zp, step := zeroPoints(zps)
	dequantizeChannels(&dst[0], (*int8)(unsafePointer(&q[0])), &scales[0], zp, step, n, true)
	return n
}
