package quant

import (
	"fmt"
	"math"
)

// smallestNormal is the smallest positive normal float32; a scale below it
// is treated as a zero range.
const smallestNormal = 0x1p-126

// Params returns the scale and zero point that map the float range
// [min, max] onto T, following ONNX Runtime's quantization tools:
//
//   - the range is first widened to contain 0, so that 0 is exact;
//   - asymmetric: scale = (max-min)/(qmax-qmin) over the full type range
//     and zeroPoint = round(qmin - min/scale);
//   - symmetric: the range becomes [-a, a] with a = max(|min|, |max|);
//     int8 uses [-127, 127] with zero point 0 (so -x quantizes to -q),
//     uint8 uses [0, 255] with zero point 128.
//
// A range that is all zero (or so small that the scale would underflow)
// gives scale 1 and the zero point above, so every value quantizes to it.
// min > max gives ErrRange; NaN or ±Inf gives ErrRange too.
func Params[T Integer](min, max float32, symmetric bool) (scale float32, zeroPoint T, err error) {
	if isNonFinite(min) || isNonFinite(max) {
		return 0, 0, fmt.Errorf("%w: [%v, %v], want finite bounds", ErrRange, min, max)
	}
	if min > max {
		return 0, 0, fmt.Errorf("%w: min %v > max %v", ErrRange, min, max)
	}
	qmin, qmax := bounds[T]()
	rmin := math.Min(float64(min), 0)
	rmax := math.Max(float64(max), 0)
	var zp float64
	if symmetric {
		a := math.Max(-rmin, rmax)
		if qmin < 0 {
			qmin = -qmax
		}
		rmin, rmax = -a, a
		zp = math.RoundToEven(float64(qmin+qmax) / 2)
	}
	s := (rmax - rmin) / float64(qmax-qmin)
	if s < smallestNormal || float32(s) < smallestNormal {
		return 1, T(int32(zp)), nil
	}
	scale = float32(s)
	if !symmetric {
		zp = math.RoundToEven(float64(qmin) - rmin/float64(scale))
		zp = math.Max(float64(qmin), math.Min(float64(qmax), zp))
	}
	return scale, T(int32(zp)), nil
}

func isNonFinite(f float32) bool {
	return math.IsNaN(float64(f)) || math.IsInf(float64(f), 0)
}

// MinMax returns the smallest and largest value of x. It returns ErrEmpty
// for an empty x and ErrNonFinite, naming the index, for NaN or ±Inf.
func MinMax(x []float32) (min, max float32, err error) {
	if len(x) == 0 {
		return 0, 0, fmt.Errorf("%w: min/max of an empty slice", ErrEmpty)
	}
	min, max = x[0], x[0]
	for _, v := range x {
		if v < min {
			min = v
		}
		if v > max {
			max = v
		}
	}
	if i := firstNonFinite(x); i >= 0 {
		return 0, 0, fmt.Errorf("%w: x[%d] is %v", ErrNonFinite, i, x[i])
	}
	return min, max, nil
}

// firstNonFinite returns the index of the first NaN or ±Inf in x, or -1.
func firstNonFinite(x []float32) int {
	for i, v := range x {
		if isNonFinite(v) {
			return i
		}
	}
	return -1
}

// TensorParams computes per-tensor parameters from the min and max of x
// (see Params). Empty x gives ErrEmpty; NaN or ±Inf gives ErrNonFinite.
func TensorParams[T Integer](x []float32, symmetric bool) (scale float32, zeroPoint T, err error) {
	lo, hi, err := MinMax(x)
	if err != nil {
		return 0, 0, err
	}
	return Params[T](lo, hi, symmetric)
}

// ChannelParams computes per-channel parameters along axis of x (shape
// row-major, axis may be negative) from each channel's min and max (see
// Params). It returns one scale and zero point per channel.
func ChannelParams[T Integer](x []float32, shape []int, axis int, symmetric bool) (scales []float32, zeroPoints []T, err error) {
	outer, channels, inner, err := axisLayout(len(x), shape, axis)
	if err != nil {
		return nil, nil, err
	}
	if len(x) == 0 {
		return nil, nil, fmt.Errorf("%w: per-channel parameters of an empty tensor (shape %v)", ErrEmpty, shape)
	}
	mins := make([]float32, channels)
	maxs := make([]float32, channels)
	for c := range mins {
		mins[c] = float32(math.Inf(1))
		maxs[c] = float32(math.Inf(-1))
	}
	off := 0
	for o := 0; o < outer; o++ {
		for c := 0; c < channels; c++ {
			lo, hi := mins[c], maxs[c]
			for _, v := range x[off : off+inner] {
				if v < lo {
					lo = v
				}
				if v > hi {
					hi = v
				}
				if v != v {
					return nil, nil, fmt.Errorf("%w: x[%d] is NaN", ErrNonFinite, off)
				}
			}
			mins[c], maxs[c] = lo, hi
			off += inner
		}
	}
	scales = make([]float32, channels)
	zeroPoints = make([]T, channels)
	for c := range scales {
		if isNonFinite(mins[c]) || isNonFinite(maxs[c]) {
			return nil, nil, fmt.Errorf("channel %d: %w: ±Inf in data", c, ErrNonFinite)
		}
		if scales[c], zeroPoints[c], err = Params[T](mins[c], maxs[c], symmetric); err != nil {
			return nil, nil, fmt.Errorf("channel %d: %w", c, err)
		}
	}
	return scales, zeroPoints, nil
}
