package quant

import (
	"math"
	"math/rand/v2"
	"testing"

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
