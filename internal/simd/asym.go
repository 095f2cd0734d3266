package simd

// The asymmetric kernels: a float32 query against an int8 code, for
// indexes that keep only codes in memory (vector's QuantInt8Only).

// DotF32Int8Go returns Σ a[i]·float32(b[i]) over len(a): the dot product of
// a float query with an int8 code (the code's scale is applied by the
// caller). Four independent accumulators, as the other portable kernels.
func DotF32Int8Go(a []float32, b []int8) float32 {
	n := len(a)
	b = b[:n]
	var s0, s1, s2, s3 float32
	for len(a) >= 4 {
		x, y := a[:4:4], b[:4:4]
		s0 += x[0] * float32(y[0])
		s1 += x[1] * float32(y[1])
		s2 += x[2] * float32(y[2])
		s3 += x[3] * float32(y[3])
		a, b = a[4:], b[4:]
	}
	b = b[:len(a)]
	for i := range a {
		s0 += a[i] * float32(b[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// L2F32Int8Go returns Σ (a[i] - scale·b[i])² over len(a): the squared
// Euclidean distance from a float query to a dequantized int8 code.
func L2F32Int8Go(a []float32, b []int8, scale float32) float32 {
	n := len(a)
	b = b[:n]
	var s0, s1, s2, s3 float32
	for len(a) >= 4 {
		x, y := a[:4:4], b[:4:4]
		d0 := x[0] - scale*float32(y[0])
		d1 := x[1] - scale*float32(y[1])
		d2 := x[2] - scale*float32(y[2])
		d3 := x[3] - scale*float32(y[3])
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
		a, b = a[4:], b[4:]
	}
	b = b[:len(a)]
	for i := range a {
		d := a[i] - scale*float32(b[i])
		s0 += d * d
	}
	return (s0 + s1) + (s2 + s3)
}
