package quant

import (
	"fmt"
	"math"

	"github.com/quiverml/quiver/internal/simd"
)

// Integer is the set of 8-bit element types that QuantizeLinear and
// DequantizeLinear produce and consume.
type Integer interface {
	int8 | uint8
}

// bounds returns the saturation limits of T.
func bounds[T Integer]() (lo, hi int32) {
	var z T
	z--
	if z > 0 { // unsigned: 0-1 wrapped to 255
		return 0, 255
	}
	return -128, 127
}

// roundMagic is 1.5·2^23: adding and subtracting it rounds a float32 of
// magnitude below 2^22 to the nearest integer, ties to even, in the current
// (IEEE default) rounding mode. Go never reassociates float arithmetic, so
// the pair is not folded away.
const roundMagic = float32(12582912)

func checkScale(scale float32) error {
	if !(scale > 0) || math.IsInf(float64(scale), 0) {
		return fmt.Errorf("%w: scale %v, want a finite value > 0", ErrScale, scale)
	}
	return nil
}

// Quantize implements ONNX QuantizeLinear for one scale and zero point:
//
//	dst[i] = saturate(roundHalfToEven(x[i] / scale) + zeroPoint)
//
// with the division done in float32, exactly as ONNX Runtime computes it, so
// results match ORT bit for bit. ±Inf saturate to the type's limits. NaN
// elements are written as zeroPoint and the call returns an error wrapping
// ErrNonFinite after converting the rest. An empty x is a no-op.
// len(dst) must equal len(x); scale must be finite and > 0.
func Quantize[T Integer](dst []T, x []float32, scale float32, zeroPoint T) error {
	if len(dst) != len(x) {
		return fmt.Errorf("%w: dst has %d elements, x has %d; want equal", ErrShape, len(dst), len(x))
	}
	if err := checkScale(scale); err != nil {
		return err
	}
	if n := quantizeBlock(dst, x, scale, zeroPoint); n >= 0 {
		return fmt.Errorf("%w: x[%d] is NaN", ErrNonFinite, n)
	}
	return nil
}

// quantizeBlock quantizes x into dst (same length) and returns the index of
// the first NaN, or -1.
func quantizeBlock[T Integer](dst []T, x []float32, scale float32, zp T) int {
	qlo, qhi := bounds[T]()
	zpi := int32(zp)
	lo := float32(qlo - zpi)
	hi := float32(qhi - zpi)
	dst = dst[:len(x)]
	nan := -1
	i := 0
	if simd.Convert {
		// The kernel converts 8 at a time and stops before a group of 8
		// holding a NaN, which the scalar path takes before going on.
		for {
			i += quantizeSIMD(dst[i:], x[i:], scale, lo, hi, zpi)
			if len(x)-i < 8 {
				break
			}
			nan = quantizeScalar(dst[i:i+8], x[i:i+8], scale, lo, hi, zp, i, nan)
			i += 8
		}
	}
	for ; i+4 <= len(x); i += 4 {
		v0 := x[i] / scale
		v1 := x[i+1] / scale
		v2 := x[i+2] / scale
		v3 := x[i+3] / scale
		v0 = clampRound(v0, lo, hi)
		v1 = clampRound(v1, lo, hi)
		v2 = clampRound(v2, lo, hi)
		v3 = clampRound(v3, lo, hi)
		if v0 != v0 || v1 != v1 || v2 != v2 || v3 != v3 {
			nan = quantizeScalar(dst[i:i+4], x[i:i+4], scale, lo, hi, zp, i, nan)
			continue
		}
		dst[i] = T(int32(v0) + zpi)
		dst[i+1] = T(int32(v1) + zpi)
		dst[i+2] = T(int32(v2) + zpi)
		dst[i+3] = T(int32(v3) + zpi)
	}
	return quantizeScalar(dst[i:], x[i:], scale, lo, hi, zp, i, nan)
}

// quantizeScalar is the element-by-element path for tails and for groups
// that contain a NaN. It returns the updated index of the first NaN.
func quantizeScalar[T Integer](dst []T, x []float32, scale, lo, hi float32, zp T, base, nan int) int {
	zpi := int32(zp)
	dst = dst[:len(x)]
	for j, xv := range x {
		v := clampRound(xv/scale, lo, hi)
		if v != v {
			if nan < 0 {
				nan = base + j
			}
			dst[j] = zp
			continue
		}
		dst[j] = T(int32(v) + zpi)
	}
	return nan
}

func clampRound(v, lo, hi float32) float32 {
	if v < lo {
		v = lo
	}
	if v > hi {
		v = hi
	}
	return (v + roundMagic) - roundMagic
}

// Dequantize implements ONNX DequantizeLinear for one scale and zero point:
//
//	dst[i] = float32(int32(q[i]) - int32(zeroPoint)) * scale
//
// bit for bit as ONNX Runtime computes it. An empty q is a no-op.
// len(dst) must equal len(q); scale must be finite and > 0.
func Dequantize[T Integer](dst []float32, q []T, scale float32, zeroPoint T) error {
	if len(dst) != len(q) {
		return fmt.Errorf("%w: dst has %d elements, q has %d; want equal", ErrShape, len(dst), len(q))
	}
	if err := checkScale(scale); err != nil {
		return err
	}
	dequantizeBlock(dst, q, scale, zeroPoint)
	return nil
}

func dequantizeBlock[T Integer](dst []float32, q []T, scale float32, zp T) {
	zpi := int32(zp)
	dst = dst[:len(q)]
	i := dequantizeSIMD(dst, q, scale, zpi)
	for ; i+8 <= len(q); i += 8 {
		s := q[i : i+8 : i+8]
		d := dst[i : i+8 : i+8]
		d[0] = float32(int32(s[0])-zpi) * scale
		d[1] = float32(int32(s[1])-zpi) * scale
		d[2] = float32(int32(s[2])-zpi) * scale
		d[3] = float32(int32(s[3])-zpi) * scale
		d[4] = float32(int32(s[4])-zpi) * scale
		d[5] = float32(int32(s[5])-zpi) * scale
		d[6] = float32(int32(s[6])-zpi) * scale
		d[7] = float32(int32(s[7])-zpi) * scale
	}
	for ; i < len(q); i++ {
		dst[i] = float32(int32(q[i])-zpi) * scale
	}
}

// quantizeSIMD runs the vector kernel for T over a prefix of x and
// returns its length (see simd.QuantizeInt8).
func quantizeSIMD[T Integer](dst []T, x []float32, scale, lo, hi float32, zp int32) int {
	switch d := any(dst).(type) {
	case []int8:
		return simd.QuantizeInt8(d, x, scale, lo, hi, zp)
	case []uint8:
		return simd.QuantizeUint8(d, x, scale, lo, hi, zp)
	}
	return 0
}

// dequantizeSIMD runs the vector kernel for T over a prefix of q and
// returns its length.
func dequantizeSIMD[T Integer](dst []float32, q []T, scale float32, zp int32) int {
	switch c := any(q).(type) {
	case []int8:
		return simd.DequantizeInt8(dst, c, scale, zp)
	case []uint8:
		return simd.DequantizeUint8(dst, c, scale, zp)
	}
	return 0
}

// axisLayout validates shape and axis for n elements and returns the number
// of blocks before the axis, the axis length and the contiguous run after it.
func axisLayout(n int, shape []int, axis int) (outer, channels, inner int, err error) {
	rank := len(shape)
	if rank == 0 {
		return 0, 0, 0, fmt.Errorf("%w: axis %d of a rank-0 tensor, want a tensor of rank >= 1", ErrAxis, axis)
	}
	if axis < -rank || axis >= rank {
		return 0, 0, 0, fmt.Errorf("%w: axis %d, want in [%d, %d) for shape %v", ErrAxis, axis, -rank, rank, shape)
	}
	if axis < 0 {
		axis += rank
	}
	total := 1
	for _, d := range shape {
		if d < 0 {
			return 0, 0, 0, fmt.Errorf("%w: shape %v has a negative dimension", ErrShape, shape)
		}
		if d != 0 && total > math.MaxInt/d {
			return 0, 0, 0, fmt.Errorf("%w: shape %v overflows int", ErrShape, shape)
		}
		total *= d
	}
	if total != n {
		return 0, 0, 0, fmt.Errorf("%w: shape %v holds %d elements, data has %d", ErrShape, shape, total, n)
	}
	outer, inner = 1, 1
	for _, d := range shape[:axis] {
		outer *= d
	}
	for _, d := range shape[axis+1:] {
		inner *= d
	}
	return outer, shape[axis], inner, nil
}

func checkChannelParams[T Integer](channels int, scales []float32, zeroPoints []T) error {
	if len(scales) != channels {
		return fmt.Errorf("%w: %d scales, want one per channel (%d)", ErrShape, len(scales), channels)
	}
	if zeroPoints != nil && len(zeroPoints) != channels {
		return fmt.Errorf("%w: %d zero points, want none or one per channel (%d)", ErrShape, len(zeroPoints), channels)
	}
	for c, s := range scales {
		if err := checkScale(s); err != nil {
			return fmt.Errorf("channel %d: %w", c, err)
		}
	}
	return nil
}

// QuantizeAxis implements ONNX QuantizeLinear with per-axis (per-channel)
// scales: x has the given shape (row-major), and element x[..., c, ...] with
// index c along axis uses scales[c] and zeroPoints[c]. axis may be negative
// (counted from the end, as in ONNX). zeroPoints may be nil (all zero).
// Rounding, saturation and NaN handling are those of Quantize.
func QuantizeAxis[T Integer](dst []T, x []float32, shape []int, axis int, scales []float32, zeroPoints []T) error {
	if len(dst) != len(x) {
		return fmt.Errorf("%w: dst has %d elements, x has %d; want equal", ErrShape, len(dst), len(x))
	}
	outer, channels, inner, err := axisLayout(len(x), shape, axis)
	if err != nil {
		return err
	}
	if err := checkChannelParams(channels, scales, zeroPoints); err != nil {
		return err
	}
	if len(x) == 0 { // a dimension of 0: no rows to walk
		return nil
	}
	nan := -1
	switch {
	case simd.Convert && inner < runsFrom:
		nan = quantizeChannelRuns(dst, x, scales, zeroPoints, inner)
	case inner < stridedBelow:
		nan = quantizeStrided(dst, x, scales, zeroPoints, inner)
	default:
		off := 0
		for o := 0; o < outer; o++ {
			for c := 0; c < channels; c++ {
				var zp T
				if zeroPoints != nil {
					zp = zeroPoints[c]
				}
				if k := quantizeBlock(dst[off:off+inner], x[off:off+inner], scales[c], zp); k >= 0 && nan < 0 {
					nan = off + k
				}
				off += inner
			}
		}
	}
	if nan >= 0 {
		return fmt.Errorf("%w: x[%d] is NaN", ErrNonFinite, nan)
	}
	return nil
}

// DequantizeAxis implements ONNX DequantizeLinear with per-axis scales; the
// layout rules are those of QuantizeAxis.
func DequantizeAxis[T Integer](dst []float32, q []T, shape []int, axis int, scales []float32, zeroPoints []T) error {
	if len(dst) != len(q) {
		return fmt.Errorf("%w: dst has %d elements, q has %d; want equal", ErrShape, len(dst), len(q))
	}
	outer, channels, inner, err := axisLayout(len(q), shape, axis)
	if err != nil {
		return err
	}
	if err := checkChannelParams(channels, scales, zeroPoints); err != nil {
		return err
	}
	if len(q) == 0 {
		return nil
	}
	switch {
	case simd.Convert && inner < runsFrom:
		dequantizeChannelRuns(dst, q, scales, zeroPoints, inner)
		return nil
	case inner < stridedBelow:
		dequantizeStrided(dst, q, scales, zeroPoints, inner)
		return nil
	}
	off := 0
	for o := 0; o < outer; o++ {
		for c := 0; c < channels; c++ {
			var zp T
			if zeroPoints != nil {
				zp = zeroPoints[c]
			}
			dequantizeBlock(dst[off:off+inner], q[off:off+inner], scales[c], zp)
			off += inner
		}
	}
	return nil
}

// Per-axis layouts. x is [outer, channels, inner] (row-major), channel c
// scaling the inner elements of each of its runs. Long runs (inner >=
// runsFrom) take the per-tensor kernel once per run. Shorter runs, down
// to inner = 1 (the last axis, as in MatMul weights [K, N] quantized along
// N), take the channel kernels, which load 8 or 16 scales and zero points
// beside the data: for inner = 1 with enough channels the scales are
// already one per element of a row; otherwise they are expanded to one
// per element on the stack, over as many whole periods (channels·inner
// elements) as fill a row of 256 or more, or over a segment of the
// channels at a time when one period is longer than the buffer. Without
// the kernels, runs shorter than stridedBelow go through the strided Go
// loops and longer ones through the per-tensor Go loop.
const (
	runsFrom     = 64
	stridedBelow = 8
	expandMax    = 1024 // elements of scales (and zero points) expanded
)

// quantizeChannelRuns quantizes x laid out as [outer, len(scales), inner]
// with the channel kernels (inner < runsFrom) and returns the index of the
// first NaN, or -1. x is not empty, so neither is a period.
func quantizeChannelRuns[T Integer](dst []T, x, scales []float32, zps []T, inner int) int {
	qlo, qhi := bounds[T]()
	dst = dst[:len(x)]
	p := len(scales) * inner
	nan := -1
	if inner == 1 && p >= 64 {
		for off := 0; off+p <= len(x); off += p {
			nan = firstNaN(nan, quantizeRow(dst[off:off+p], x[off:off+p], scales, zps, qlo, qhi, off))
		}
		return nan
	}
	var sbuf [expandMax]float32
	var zbuf [expandMax]T
	if p <= expandMax {
		l := p * max(1, 256/p)
		zs := expand(sbuf[:l], zbuf[:l], scales, zps, inner)
		for off := 0; off < len(x); off += l {
			n := min(l, len(x)-off)
			nan = firstNaN(nan, quantizeRow(dst[off:off+n], x[off:off+n], sbuf[:n], from(zs, 0, n), qlo, qhi, off))
		}
		return nan
	}
	cc := expandMax / inner
	for c0 := 0; c0 < len(scales); c0 += cc {
		c1 := min(c0+cc, len(scales))
		seg := (c1 - c0) * inner
		zs := expand(sbuf[:seg], zbuf[:seg], scales[c0:c1], from(zps, c0, c1), inner)
		for off := c0 * inner; off+seg <= len(x); off += p {
			nan = firstNaN(nan, quantizeRow(dst[off:off+seg], x[off:off+seg], sbuf[:seg], zs, qlo, qhi, off))
		}
	}
	return nan
}

// dequantizeChannelRuns is quantizeChannelRuns for DequantizeLinear.
func dequantizeChannelRuns[T Integer](dst []float32, q []T, scales []float32, zps []T, inner int) {
	dst = dst[:len(q)]
	p := len(scales) * inner
	if inner == 1 && p >= 64 {
		for off := 0; off+p <= len(q); off += p {
			dequantizeRow(dst[off:off+p], q[off:off+p], scales, zps)
		}
		return
	}
	var sbuf [expandMax]float32
	var zbuf [expandMax]T
	if p <= expandMax {
		l := p * max(1, 256/p)
		zs := expand(sbuf[:l], zbuf[:l], scales, zps, inner)
		for off := 0; off < len(q); off += l {
			n := min(l, len(q)-off)
			dequantizeRow(dst[off:off+n], q[off:off+n], sbuf[:n], from(zs, 0, n))
		}
		return
	}
	cc := expandMax / inner
	for c0 := 0; c0 < len(scales); c0 += cc {
		c1 := min(c0+cc, len(scales))
		seg := (c1 - c0) * inner
		zs := expand(sbuf[:seg], zbuf[:seg], scales[c0:c1], from(zps, c0, c1), inner)
		for off := c0 * inner; off+seg <= len(q); off += p {
			dequantizeRow(dst[off:off+seg], q[off:off+seg], sbuf[:seg], zs)
		}
	}
}

// expand fills s with each scale repeated inner times, the whole pattern
// repeated to len(s) (a multiple of len(scales)·inner), and z likewise with
// the zero points; it returns z, or nil without zero points.
func expand[T Integer](s []float32, z []T, scales []float32, zps []T, inner int) []T {
	for i := 0; i < len(s); {
		for _, v := range scales {
			for range inner {
				s[i] = v
				i++
			}
		}
	}
	if zps == nil {
		return nil
	}
	for i := 0; i < len(z); {
		for _, v := range zps {
			for range inner {
				z[i] = v
				i++
			}
		}
	}
	return z
}

// quantizeRow quantizes xs, element c with sc[c] and zs[c] (0 for nil zs),
// and returns the index (from base) of its first NaN, or -1. The kernel
// stops before a group of 8 holding a NaN, which the Go path takes before
// going on.
func quantizeRow[T Integer](ds []T, xs, sc []float32, zs []T, qlo, qhi int32, base int) int {
	nan := -1
	c := 0
	for {
		c += quantizeChannelsSIMD(ds[c:], xs[c:], sc[c:], from(zs, c, len(xs)))
		if len(xs)-c < 8 {
			break
		}
		nan = quantizeLastAxis(ds[c:c+8], xs[c:c+8], sc[c:c+8], from(zs, c, c+8), qlo, qhi, base+c, nan)
		c += 8
	}
	return quantizeLastAxis(ds[c:], xs[c:], sc[c:len(xs)], from(zs, c, len(xs)), qlo, qhi, base+c, nan)
}

// dequantizeRow dequantizes qs, element c with sc[c] and zs[c] (0 for
// nil zs).
func dequantizeRow[T Integer](ds []float32, qs []T, sc []float32, zs []T) {
	c := dequantizeChannelsSIMD(ds, qs, sc, zs)
	dequantizeRowGo(ds[c:], qs[c:], sc[c:], from(zs, c, len(qs)))
}

// dequantizeRowGo is dequantizeRow's Go loop.
func dequantizeRowGo[T Integer](ds []float32, qs []T, sc []float32, zs []T) {
	ds = ds[:len(qs)]
	sc = sc[:len(qs)]
	if zs == nil {
		for i, v := range qs {
			ds[i] = float32(int32(v)) * sc[i]
		}
		return
	}
	zs = zs[:len(qs)]
	for i, v := range qs {
		ds[i] = float32(int32(v)-int32(zs[i])) * sc[i]
	}
}

// firstNaN merges two NaN indices (-1 for none) into the smaller.
func firstNaN(a, b int) int {
	if a < 0 || (b >= 0 && b < a) {
		return b
	}
	return a
}

// quantizeStrided quantizes x laid out as [outer, len(scales), inner] and
// returns the index of the first NaN, or -1. Rounding before the integer
// clamp gives the same result as ONNX's clamp of the rounded value: the
// float clamp to ±512 only keeps the rounding trick in its exact range.
func quantizeStrided[T Integer](dst []T, x []float32, scales []float32, zps []T, inner int) int {
	qlo, qhi := bounds[T]()
	nan := -1
	dst = dst[:len(x)]
	row := len(scales) * inner
	if inner == 1 {
		for off := 0; off+row <= len(x); off += row {
			nan = quantizeLastAxis(dst[off:off+row], x[off:off+row], scales, zps, qlo, qhi, off, nan)
		}
		return nan
	}
	for off := 0; off+row <= len(x); off += row {
		xs, ds := x[off:off+row], dst[off:off+row]
		for c, s := range scales {
			var zp int32
			if zps != nil {
				zp = int32(zps[c])
			}
			for i := c * inner; i < (c+1)*inner; i++ {
				v := xs[i] / s
				if v != v {
					if nan < 0 {
						nan = off + i
					}
					ds[i] = T(zp)
					continue
				}
				ds[i] = T(roundClampInt(v, zp, qlo, qhi))
			}
		}
	}
	return nan
}

// from returns z[lo:hi], or nil for absent zero points.
func from[T Integer](z []T, lo, hi int) []T {
	if z == nil {
		return nil
	}
	return z[lo:hi]
}

// quantizeLastAxis is the Go path for one row (or the part of it the
// kernel left) of a last-axis quantization: element c uses sc[c] and
// zs[c] (0 for nil zs). base is the row part's offset in the tensor, for
// the index of the first NaN, which it returns updated.
func quantizeLastAxis[T Integer](ds []T, xs, sc []float32, zs []T, qlo, qhi int32, base, nan int) int {
	ds = ds[:len(xs)]
	sc = sc[:len(xs)]
	c := 0
	if zs != nil {
		zs = zs[:len(xs)]
		for ; c+4 <= len(xs); c += 4 {
			v0 := xs[c] / sc[c]
			v1 := xs[c+1] / sc[c+1]
			v2 := xs[c+2] / sc[c+2]
			v3 := xs[c+3] / sc[c+3]
			if v0 != v0 || v1 != v1 || v2 != v2 || v3 != v3 {
				break // finish the row on the careful path below
			}
			ds[c] = T(roundClampInt(v0, int32(zs[c]), qlo, qhi))
			ds[c+1] = T(roundClampInt(v1, int32(zs[c+1]), qlo, qhi))
			ds[c+2] = T(roundClampInt(v2, int32(zs[c+2]), qlo, qhi))
			ds[c+3] = T(roundClampInt(v3, int32(zs[c+3]), qlo, qhi))
		}
	}
	for ; c < len(xs); c++ {
		var zp int32
		if zs != nil {
			zp = int32(zs[c])
		}
		v := xs[c] / sc[c]
		if v != v {
			if nan < 0 {
				nan = base + c
			}
			ds[c] = T(zp)
			continue
		}
		ds[c] = T(roundClampInt(v, zp, qlo, qhi))
	}
	return nan
}

// quantizeChannelsSIMD runs the last-axis kernel for T over a prefix of x
// and returns its length (see simd.QuantizeInt8Channels).
func quantizeChannelsSIMD[T Integer](dst []T, x, scales []float32, zps []T) int {
	switch d := any(dst).(type) {
	case []int8:
		return simd.QuantizeInt8Channels(d, x, scales, any(zps).([]int8))
	case []uint8:
		return simd.QuantizeUint8Channels(d, x, scales, any(zps).([]uint8))
	}
	return 0
}

// dequantizeChannelsSIMD is quantizeChannelsSIMD's DequantizeLinear
// counterpart.
func dequantizeChannelsSIMD[T Integer](dst []float32, q []T, scales []float32, zps []T) int {
	switch c := any(q).(type) {
	case []int8:
		return simd.DequantizeInt8Channels(dst, c, scales, any(zps).([]int8))
	case []uint8:
		return simd.DequantizeUint8Channels(dst, c, scales, any(zps).([]uint8))
	}
	return 0
}

// dequantizeStrided is the DequantizeLinear counterpart of quantizeStrided.
func dequantizeStrided[T Integer](dst []float32, q []T, scales []float32, zps []T, inner int) {
	dst = dst[:len(q)]
	row := len(scales) * inner
	if inner == 1 {
		for off := 0; off+row <= len(q); off += row {
			dequantizeRowGo(dst[off:off+row], q[off:off+row], scales, zps)
		}
		return
	}
	for off := 0; off+row <= len(q); off += row {
		qs, ds := q[off:off+row], dst[off:off+row]
		for c, s := range scales {
			var zp int32
			if zps != nil {
				zp = int32(zps[c])
			}
			for i := c * inner; i < (c+1)*inner; i++ {
				ds[i] = float32(int32(qs[i])-zp) * s
			}
		}
	}
}

// roundClampInt rounds v half to even, adds zp and saturates to [qlo, qhi].
// The float clamp to ±512 only keeps the rounding trick in its exact range.
func roundClampInt(v float32, zp, qlo, qhi int32) int32 {
	v = max32(-512, min32(512, v))
	r := int32((v+roundMagic)-roundMagic) + zp
	return min(qhi, max(qlo, r))
}

// min32 and max32 are plain comparisons: unlike the min and max builtins
// they need no NaN or signed-zero handling (NaN is dealt with earlier).
func min32(a, b float32) float32 {
	if b < a {
		return b
	}
	return a
}

func max32(a, b float32) float32 {
	if b > a {
		return b
	}
	return a
}
