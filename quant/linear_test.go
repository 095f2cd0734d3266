package quant

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quiverml/quiver/internal/onnxpb"
	"github.com/stretchr/testify/require"
)

// refQuantize is a direct float64 transcription of the ONNX formula, used
// to cross-check the unrolled kernel on data without NaN.
func refQuantize(x, scale float32, zp, lo, hi int32) int32 {
	v := math.RoundToEven(float64(x/scale)) + float64(zp)
	return int32(math.Max(float64(lo), math.Min(float64(hi), v)))
}

func TestQuantizeMatchesFormula(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 3, 4, 5, 17, 1000} {
		for _, s := range []float32{0.5, 0.0173, 1e-6} {
			x := edgeData(s, n, uint64(n))
			for i := range x {
				if r.IntN(4) == 0 {
					x[i] = float32(r.NormFloat64()) * s * 300
				}
			}
			q8 := make([]int8, n)
			qu := make([]uint8, n)
			require.NoError(t, Quantize(q8, x, s, int8(-3)))
			require.NoError(t, Quantize(qu, x, s, uint8(140)))
			for i := range x {
				require.Equal(t, refQuantize(x[i], s, -3, -128, 127), int32(q8[i]), "x=%v", x[i])
				require.Equal(t, refQuantize(x[i], s, 140, 0, 255), int32(qu[i]), "x=%v", x[i])
			}
		}
	}
}

func TestQuantizeTiesAndSaturation(t *testing.T) {
	negZero := float32(math.Copysign(0, -1))
	inf := float32(math.Inf(1))
	x := []float32{0.5, 1.5, 2.5, -0.5, -1.5, -2.5, negZero, 200, -200, inf, -inf, 127.5, -128.5}
	q := make([]int8, len(x))
	require.NoError(t, Quantize(q, x, 1, int8(0)))
	require.Equal(t, []int8{0, 2, 2, 0, -2, -2, 0, 127, -128, 127, -128, 127, -128}, q)

	qu := make([]uint8, len(x))
	require.NoError(t, Quantize(qu, x, 1, uint8(10)))
	require.Equal(t, []uint8{10, 12, 12, 10, 8, 8, 10, 210, 0, 255, 0, 138, 0}, qu)
}

func TestQuantizeNaN(t *testing.T) {
	nan := float32(math.NaN())
	x := []float32{1, 2, nan, 4, 5, 6, 7, nan, 9}
	q := make([]int8, len(x))
	err := Quantize(q, x, 1, int8(5))
	require.ErrorIs(t, err, ErrNonFinite)
	require.Contains(t, err.Error(), "x[2]")
	require.Equal(t, []int8{6, 7, 5, 9, 10, 11, 12, 5, 14}, q, "NaN -> zero point, the rest converted")

	err = QuantizeAxis(q, x, []int{3, 3}, 0, []float32{1, 1, 1}, nil)
	require.ErrorIs(t, err, ErrNonFinite)
	require.Contains(t, err.Error(), "x[2]")

	// Last axis with zero points (the unrolled strided kernel): a NaN in
	// the second row must not disturb its neighbours.
	x = []float32{1, 2, 3, 4, 5, 6, nan, 8.5, 9, 10, 11, 12}
	scales := []float32{0.5, 1, 2, 4, 8, 16}
	zps := []int8{1, -1, 2, -2, 3, -3}
	q = make([]int8, len(x))
	err = QuantizeAxis(q, x, []int{2, 6}, 1, scales, zps)
	require.ErrorIs(t, err, ErrNonFinite)
	require.Contains(t, err.Error(), "x[6]")
	for i, v := range x {
		c := i % 6
		want := zps[c]
		if v == v {
			want = int8(refQuantize(v, scales[c], int32(zps[c]), -128, 127))
		}
		require.Equal(t, want, q[i], "element %d", i)
	}
}

func TestLinearBadInput(t *testing.T) {
	x := []float32{1, 2, 3, 4, 5, 6}
	q := make([]int8, 6)
	f := make([]float32, 6)
	sh := []int{2, 3}
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"quantize length", Quantize(q[:5], x, 1, 0), ErrShape},
		{"quantize zero scale", Quantize(q, x, 0, 0), ErrScale},
		{"quantize negative scale", Quantize(q, x, -1, 0), ErrScale},
		{"quantize NaN scale", Quantize(q, x, float32(math.NaN()), 0), ErrScale},
		{"quantize Inf scale", Quantize(q, x, float32(math.Inf(1)), 0), ErrScale},
		{"dequantize length", Dequantize(f[:2], q, 1, 0), ErrShape},
		{"dequantize zero scale", Dequantize(f, q, 0, 0), ErrScale},
		{"axis too large", QuantizeAxis(q, x, sh, 2, []float32{1, 1, 1}, nil), ErrAxis},
		{"axis too small", QuantizeAxis(q, x, sh, -3, []float32{1, 1}, nil), ErrAxis},
		{"rank 0", QuantizeAxis(q, x, nil, 0, []float32{1}, nil), ErrAxis},
		{"shape mismatch", QuantizeAxis(q, x, []int{2, 2}, 0, []float32{1, 1}, nil), ErrShape},
		{"negative dim", QuantizeAxis(q, x, []int{-2, -3}, 0, []float32{1, 1}, nil), ErrShape},
		{"scale count", QuantizeAxis(q, x, sh, 1, []float32{1, 1}, nil), ErrShape},
		{"zero point count", QuantizeAxis(q, x, sh, 1, []float32{1, 1, 1}, []int8{0}), ErrShape},
		{"channel scale", QuantizeAxis(q, x, sh, 1, []float32{1, 0, 1}, nil), ErrScale},
		{"dst length", QuantizeAxis(q[:1], x, sh, 1, []float32{1, 1, 1}, nil), ErrShape},
		{"dequantize axis", DequantizeAxis(f, q, sh, 5, []float32{1, 1, 1}, nil), ErrAxis},
		{"dequantize scales", DequantizeAxis(f, q, sh, 0, []float32{1}, nil), ErrShape},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, tc.err, tc.want)
		})
	}
	// Empty tensors are a documented no-op.
	require.NoError(t, Quantize([]int8{}, nil, 1, 0))
	require.NoError(t, Dequantize(nil, []uint8{}, 1, 0))
	require.NoError(t, QuantizeAxis([]int8{}, nil, []int{0, 3}, 1, []float32{1, 1, 1}, nil))
	require.NoError(t, QuantizeAxis([]int8{}, nil, []int{2, 0}, 1, []float32{}, nil))
	require.NoError(t, QuantizeAxis([]uint8{}, nil, []int{3, 4, 0}, 1, []float32{1, 1, 1, 1}, []uint8{1, 2, 3, 4}))
	require.NoError(t, DequantizeAxis(nil, []int8{}, []int{2, 0}, 1, []float32{}, nil))
	require.NoError(t, DequantizeAxis(nil, []uint8{}, []int{3, 4, 0}, -2, []float32{1, 1, 1, 1}, nil))
}

func TestQuantizeAxisLayout(t *testing.T) {
	// Shape [2,3,2], axis 1: channel c scales elements (o, c, i).
	x := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	scales := []float32{1, 2, 4}
	zps := []int8{0, 1, -1}
	q := make([]int8, len(x))
	require.NoError(t, QuantizeAxis(q, x, []int{2, 3, 2}, 1, scales, zps))
	require.Equal(t, []int8{1, 2, 3, 3, 0, 1, 7, 8, 5, 6, 2, 2}, q)
	back := make([]float32, len(x))
	require.NoError(t, DequantizeAxis(back, q, []int{2, 3, 2}, -2, scales, zps))
	require.Equal(t, []float32{1, 2, 4, 4, 4, 8, 7, 8, 8, 10, 12, 12}, back)
}

func TestRoundTripErrorBound(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	x := randn(r, 4096, 2)
	for _, sym := range []bool{false, true} {
		s, zp, err := TensorParams[int8](x, sym)
		require.NoError(t, err)
		q := make([]int8, len(x))
		back := make([]float32, len(x))
		require.NoError(t, Quantize(q, x, s, zp))
		require.NoError(t, Dequantize(back, q, s, zp))
		rep, err := Compare(x, back)
		require.NoError(t, err)
		require.LessOrEqual(t, rep.MaxAbs, float64(s)/2*1.0001, "within range, error <= scale/2")
		require.Greater(t, rep.SQNR, 35.0)
	}
}

func TestParams(t *testing.T) {
	cases := []struct {
		name     string
		lo, hi   float32
		sym      bool
		unsigned bool
		scale    float32
		zp       int32
	}{
		{"int8 asymmetric", -1, 3, false, false, 4.0 / 255, -64},
		{"int8 symmetric", -1, 3, true, false, 3.0 / 127, 0},
		{"uint8 asymmetric", 0, 2.55, false, true, 0.01, 0},
		{"uint8 asymmetric negative", -2.55, 0, false, true, 0.01, 255},
		{"uint8 symmetric", -1, 2, true, true, 4.0 / 255, 128},
		{"range widened to 0", 2, 3, false, false, 3.0 / 255, -128},
		{"all zero", 0, 0, false, false, 1, 0},
		{"all zero uint8 symmetric", 0, 0, true, true, 1, 128},
		{"underflowing range", 0, 1e-44, false, false, 1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var s float32
			var zp int32
			if tc.unsigned {
				s8, z8, err := Params[uint8](tc.lo, tc.hi, tc.sym)
				require.NoError(t, err)
				s, zp = s8, int32(z8)
			} else {
				s8, z8, err := Params[int8](tc.lo, tc.hi, tc.sym)
				require.NoError(t, err)
				s, zp = s8, int32(z8)
			}
			require.InDelta(t, tc.scale, s, 1e-7)
			require.Equal(t, tc.zp, zp)
		})
	}
	for _, bad := range [][2]float32{{1, -1}, {float32(math.NaN()), 1}, {0, float32(math.Inf(1))}} {
		_, _, err := Params[int8](bad[0], bad[1], false)
		require.ErrorIs(t, err, ErrRange, "%v", bad)
	}
	_, _, err := TensorParams[int8](nil, true)
	require.ErrorIs(t, err, ErrEmpty)
	_, _, err = TensorParams[uint8]([]float32{1, float32(math.Inf(-1))}, true)
	require.ErrorIs(t, err, ErrNonFinite)
	_, _, err = TensorParams[uint8]([]float32{1, float32(math.NaN()), 2}, true)
	require.ErrorIs(t, err, ErrNonFinite)
}

func TestChannelParams(t *testing.T) {
	// Shape [2,2], axis 1: channel 0 = {1, -4}, channel 1 = {2, 0}.
	x := []float32{1, 2, -4, 0}
	scales, zps, err := ChannelParams[int8](x, []int{2, 2}, 1, true)
	require.NoError(t, err)
	require.InDeltaSlice(t, []float32{4.0 / 127, 2.0 / 127}, scales, 1e-7)
	require.Equal(t, []int8{0, 0}, zps)

	scales, _, err = ChannelParams[int8](x, []int{2, 2}, 0, true)
	require.NoError(t, err)
	require.InDeltaSlice(t, []float32{2.0 / 127, 4.0 / 127}, scales, 1e-7)

	_, _, err = ChannelParams[int8](nil, []int{0, 2}, 1, true)
	require.ErrorIs(t, err, ErrEmpty)
	_, _, err = ChannelParams[int8](x, []int{2, 2}, 2, true)
	require.ErrorIs(t, err, ErrAxis)
	_, _, err = ChannelParams[int8]([]float32{1, float32(math.NaN()), 0, 0}, []int{2, 2}, 1, true)
	require.ErrorIs(t, err, ErrNonFinite)
	_, _, err = ChannelParams[int8]([]float32{1, float32(math.Inf(1)), 0, 0}, []int{2, 2}, 1, true)
	require.ErrorIs(t, err, ErrNonFinite)
}

// axisRef quantizes x of the given shape along axis element by element
// with refQuantize (NaN gives the zero point), the definition QuantizeAxis
// must meet on every path.
func axisRef[T Integer](x []float32, shape []int, axis int, scales []float32, zps []T) []T {
	qlo, qhi := bounds[T]()
	inner := 1
	for _, d := range shape[axis+1:] {
		inner *= d
	}
	out := make([]T, len(x))
	for i, v := range x {
		c := (i / inner) % len(scales)
		var zp int32
		if zps != nil {
			zp = int32(zps[c])
		}
		if v/scales[c] != v/scales[c] {
			out[i] = T(zp)
			continue
		}
		out[i] = T(refQuantize(v, scales[c], zp, qlo, qhi))
	}
	return out
}

// axisData returns values for a tensor whose channel c along axis has
// scale scales[c]: ties, near-ties and saturating values in every channel.
func axisData(shape []int, axis int, seed uint64) (x, scales []float32) {
	r := rand.New(rand.NewPCG(seed, 5))
	n, inner := 1, 1
	for _, d := range shape {
		n *= d
	}
	for _, d := range shape[axis+1:] {
		inner *= d
	}
	scales = make([]float32, shape[axis])
	for c := range scales {
		scales[c] = float32(math.Exp(r.NormFloat64() * 3))
	}
	base := edgeData(1, 2000, seed)
	x = make([]float32, n)
	for i := range x {
		x[i] = base[r.IntN(len(base))] * scales[(i/inner)%len(scales)]
	}
	return x, scales
}

func testQuantizeAxisAgrees[T Integer](t *testing.T, shape []int, axis int, withZP bool, seed uint64) {
	t.Helper()
	x, scales := axisData(shape, axis, seed)
	var zps []T
	if withZP {
		r := rand.New(rand.NewPCG(seed, 6))
		zps = make([]T, len(scales))
		for c := range zps {
			zps[c] = T(r.IntN(256))
		}
	}
	// NaNs in a few places, the first of which the error names.
	firstNaN := -1
	if len(x) > 20 {
		// len/4 comes first in x, but in a later channel than len/3 when
		// a period is handled a segment of channels at a time.
		for _, i := range []int{len(x) / 3, len(x)/3 + 9, len(x) - 1, len(x) / 4} {
			x[i] = float32(math.NaN())
		}
		firstNaN = len(x) / 4
	}
	want := axisRef(x, shape, axis, scales, zps)
	got := make([]T, len(x))
	err := QuantizeAxis(got, x, shape, axis, scales, zps)
	if firstNaN >= 0 {
		require.ErrorIs(t, err, ErrNonFinite)
		require.Contains(t, err.Error(), fmt.Sprintf("x[%d]", firstNaN))
	} else {
		require.NoError(t, err)
	}
	for i := range want {
		if want[i] != got[i] {
			require.Failf(t, "mismatch", "shape %v axis %d zp %v: element %d (x=%v): want %v, got %v", shape, axis, withZP, i, x[i], want[i], got[i])
		}
	}
	// Dequantize against its formula, bit for bit.
	back := make([]float32, len(x))
	require.NoError(t, DequantizeAxis(back, got, shape, axis, scales, zps))
	inner := 1
	for _, d := range shape[axis+1:] {
		inner *= d
	}
	for i, q := range got {
		c := (i / inner) % len(scales)
		var zp int32
		if zps != nil {
			zp = int32(zps[c])
		}
		require.Equal(t, math.Float32bits(float32(int32(q)-zp)*scales[c]), math.Float32bits(back[i]), "dequantize element %d", i)
	}
}

// TestQuantizeAxisAgreesWithFormula covers every per-axis layout: the
// last axis (inner = 1) with rows around the kernels' 8 and 16 lanes and
// with few channels, short runs with scales expanded over whole periods or
// a segment of channels at a time, runs of the per-tensor kernel, and
// (with QUIVER_SIMD=purego) the Go loops.
func TestQuantizeAxisAgreesWithFormula(t *testing.T) {
	shapes := [][]int{{3, 1}, {2, 7}, {3, 8}, {3, 9}, {2, 15}, {2, 16}, {3, 17}, {4, 31}, {2, 33}, {5, 67}, {2, 3, 40},
		{64, 256}, {3, 5, 7}, {2, 4, 9}, {2, 3, 16}, {3, 300, 5}, {2, 1100}, {2, 600, 2}, {4, 3, 50}, {700, 3}, {5, 40}, {3, 2, 70}}
	for k, shape := range shapes {
		for axis := range shape {
			for _, withZP := range []bool{false, true} {
				testQuantizeAxisAgrees[int8](t, shape, axis, withZP, uint64(k))
				testQuantizeAxisAgrees[uint8](t, shape, axis, withZP, uint64(k))
			}
		}
	}
}

// TestQuantizeLastAxisGoPath checks the Go path the last-axis kernel
// falls back to (no SIMD, row tails, groups holding a NaN) directly.
func TestQuantizeLastAxisGoPath(t *testing.T) {
	x, scales := axisData([]int{1, 203}, 1, 9)
	x[50] = float32(math.NaN())
	zps := make([]int8, len(scales))
	for c := range zps {
		zps[c] = int8(c*7 - 100)
	}
	for _, z := range [][]int8{nil, zps} {
		want := axisRef(x, []int{1, 203}, 1, scales, z)
		got := make([]int8, len(x))
		nan := quantizeLastAxis(got, x, scales, z, -128, 127, 1000, -1)
		require.Equal(t, 1050, nan)
		require.Equal(t, want, got)
	}
}

func TestQuantizeAxisLastAxisMatchesORT(t *testing.T) {
	for _, shape := range [][]int{{6, 37}, {3, 64}, {2, 135}} {
		shape64 := []int64{int64(shape[0]), int64(shape[1])}
		n := shape[0] * shape[1]
		x, scales := axisData(shape, 1, uint64(n))
		zps8 := make([]int8, shape[1])
		zpsU := make([]uint8, shape[1])
		for c := range zps8 {
			zps8[c] = int8(c*37 - 90)
			zpsU[c] = uint8(c * 53)
		}
		m := qdqModel(t, true, onnxpb.TensorProto_INT8, shape64, 1, scales, int8Tensor("", nil, zps8))
		want := runORT[float32, int8](t, m, shape64, x, shape64)
		got := make([]int8, n)
		require.NoError(t, QuantizeAxis(got, x, shape, -1, scales, zps8))
		requireEqualAt(t, want, got, x)
		dm := qdqModel(t, false, onnxpb.TensorProto_INT8, shape64, 1, scales, int8Tensor("", nil, zps8))
		wantF := runORT[int8, float32](t, dm, shape64, got, shape64)
		gotF := make([]float32, n)
		require.NoError(t, DequantizeAxis(gotF, got, shape, 1, scales, zps8))
		requireBitsEqual(t, wantF, gotF)

		m = qdqModel(t, true, onnxpb.TensorProto_UINT8, shape64, 1, scales, uint8Tensor("", nil, zpsU))
		wantU := runORT[float32, uint8](t, m, shape64, x, shape64)
		gotU := make([]uint8, n)
		require.NoError(t, QuantizeAxis(gotU, x, shape, 1, scales, zpsU))
		requireEqualAt(t, wantU, gotU, x)
	}
}

// FuzzQuantizeAxis compares QuantizeAxis and DequantizeAxis along the
// last axis (the SIMD kernels where the CPU has them) with the
// element-by-element definitions on arbitrary float32 bit patterns,
// scales and zero points.
func FuzzQuantizeAxis(f *testing.F) {
	f.Add(make([]byte, 4*48), uint8(16), uint8(3))
	f.Add([]byte{0, 0, 192, 127, 0, 0, 128, 63, 0, 0, 0, 0, 0, 0, 0, 128}, uint8(1), uint8(0))
	f.Fuzz(func(t *testing.T, raw []byte, cols, seed uint8) {
		n := len(raw) / 4
		c := 1 + int(cols)%40
		n -= n % c
		if n == 0 {
			return
		}
		x := make([]float32, n)
		for i := range x {
			x[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		r := rand.New(rand.NewPCG(uint64(seed), 1))
		scales := make([]float32, c)
		zps := make([]uint8, c)
		for j := range scales {
			scales[j] = float32(math.Exp(r.NormFloat64() * 20))
			zps[j] = uint8(r.IntN(256))
		}
		scales[0] = math.SmallestNonzeroFloat32
		shape := []int{n / c, c}
		for _, z := range [][]uint8{nil, zps} {
			want := axisRef(x, shape, 1, scales, z)
			got := make([]uint8, n)
			err := QuantizeAxis(got, x, shape, 1, scales, z)
			if err != nil {
				require.ErrorIs(t, err, ErrNonFinite)
			}
			require.Equal(t, want, got)
			back := make([]float32, n)
			require.NoError(t, DequantizeAxis(back, got, shape, 1, scales, z))
			for i, q := range got {
				var zp int32
				if z != nil {
					zp = int32(z[i%c])
				}
				require.Equal(t, math.Float32bits(float32(int32(q)-zp)*scales[i%c]), math.Float32bits(back[i]), "dequantize %d", i)
			}
		}
	})
}
