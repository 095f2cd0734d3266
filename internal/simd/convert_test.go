package simd_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quiverml/quiver/internal/f16"
	"github.com/quiverml/quiver/internal/simd"
	"github.com/stretchr/testify/require"
)

// specials are float32 bit patterns at the edges of binary16 and bfloat16:
// zeros, subnormal and normal boundaries, rounding ties, overflow, Inf and
// NaNs with payloads in the high and the low bits.
var specials = []uint32{
	0x00000000, 0x80000000, 0x00000001, 0x33000000, 0x33000001, 0x337fffff, 0x33800000,
	0x387fc000, 0x387fe000, 0x38800000, 0x38801000, 0x38802000, 0x3f800000, 0x3f801000,
	0x3f803000, 0x3f808000, 0x3f818000, 0x477fe000, 0x477fefff, 0x477ff000, 0x47800000,
	0x7f7fffff, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001, 0x7f800001, 0xff800001,
	0x7fbfe000, 0x7fffffff, 0x3f807fff, 0x3f808001, 0x3f818000, 0xbf818000,
}

// floats returns n float32 values: the specials, then random bit patterns.
func floats(n int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]float32, n)
	for i := range out {
		if i < len(specials) {
			out[i] = math.Float32frombits(specials[i])
		} else {
			out[i] = math.Float32frombits(rng.Uint32())
		}
	}
	return out
}

// requireAccelerated fails on a CPU that cannot run the kernels being
// tested: every amd64 machine this project tests on has AVX2 and F16C.
func requireAccelerated(t *testing.T) {
	t.Helper()
	if !simd.Convert {
		t.Skip("this CPU or build has no conversion kernels; their callers' paths are tested instead")
	}
}

func TestF16AgreesWithReference(t *testing.T) {
	requireAccelerated(t)
	// Every binary16 value, to float32 and back.
	all := make([]uint16, 1<<16)
	for i := range all {
		all[i] = uint16(i)
	}
	wide := make([]float32, len(all))
	require.Equal(t, len(all), simd.F16ToF32(wide, all))
	for i, h := range all {
		require.Equal(t, math.Float32bits(f16.ToFloat32(h)), math.Float32bits(wide[i]), "%#04x", h)
	}
	// Random float32 bit patterns and the edge cases, at every offset of
	// a vector (lengths 8..) so tails and the 32-wide loop both run.
	src := floats(1<<16+13, 7)
	dst := make([]uint16, len(src))
	n := simd.F16FromF32(dst, src)
	require.Equal(t, len(src)&^7, n)
	for i := range n {
		require.Equal(t, f16.FromFloat32(src[i]), dst[i], "%#08x", math.Float32bits(src[i]))
	}
}

func TestBF16AgreesWithReference(t *testing.T) {
	requireAccelerated(t)
	src := floats(1<<16+5, 11)
	dst := make([]uint16, len(src))
	n := simd.BF16FromF32(dst, src)
	require.Equal(t, len(src)&^7, n)
	for i := range n {
		require.Equal(t, f16.BF16FromFloat32(src[i]), dst[i], "%#08x", math.Float32bits(src[i]))
	}
	back := make([]float32, n)
	require.Equal(t, n, simd.BF16ToF32(back, dst[:n]))
	for i := range n {
		require.Equal(t, math.Float32bits(f16.BF16ToFloat32(dst[i])), math.Float32bits(back[i]))
	}
}

// refQuantize is the definition: round half to even of the clamped
// float32 quotient, plus the zero point.
func refQuantize(x, scale, lo, hi float32, zp int32) (int32, bool) {
	v := x / scale
	if v != v {
		return 0, false
	}
	v = max(lo, min(hi, v))
	return int32(math.RoundToEven(float64(v))) + zp, true
}

func TestQuantizeAgreesWithReference(t *testing.T) {
	requireAccelerated(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, unsigned := range []bool{false, true} {
		for _, c := range []struct {
			scale float32
			zp    int32
		}{{0.1, 0}, {0.5, 3}, {1, -7}, {0.0123, 12}, {3e-3, 100}, {2, 0}} {
			qlo, qhi := int32(-128), int32(127)
			zp := c.zp
			if unsigned {
				qlo, qhi, zp = 0, 255, c.zp+128
			}
			lo, hi := float32(qlo-zp), float32(qhi-zp)
			x := make([]float32, 1003)
			for i := range x {
				switch i % 7 {
				case 0: // exact ties of the quotient
					x[i] = (float32(rng.IntN(400)-200) + 0.5) * c.scale
				case 1:
					x[i] = float32(rng.NormFloat64()) * 1e4
				case 2:
					x[i] = float32(math.Inf(1 - 2*(i&1)))
				default:
					x[i] = float32(rng.NormFloat64()) * c.scale * 60
				}
			}
			x[500] = float32(math.NaN()) // group 496..503 is left to the caller
			var got []int32
			var n int
			if unsigned {
				d := make([]uint8, len(x))
				n = simd.QuantizeUint8(d, x, c.scale, lo, hi, zp)
				for _, v := range d[:n] {
					got = append(got, int32(v))
				}
			} else {
				d := make([]int8, len(x))
				n = simd.QuantizeInt8(d, x, c.scale, lo, hi, zp)
				for _, v := range d[:n] {
					got = append(got, int32(v))
				}
			}
			require.Equal(t, 496, n, "stops before the group holding the NaN")
			for i := range n {
				want, ok := refQuantize(x[i], c.scale, lo, hi, zp)
				require.True(t, ok)
				require.Equal(t, want, got[i], "x[%d]=%g scale %g zp %d unsigned %v", i, x[i], c.scale, zp, unsigned)
			}
			// After the NaN group the kernel converts the rest.
			if unsigned {
				d := make([]uint8, len(x)-504)
				require.Equal(t, (len(x)-504)&^7, simd.QuantizeUint8(d, x[504:], c.scale, lo, hi, zp))
			} else {
				d := make([]int8, len(x)-504)
				require.Equal(t, (len(x)-504)&^7, simd.QuantizeInt8(d, x[504:], c.scale, lo, hi, zp))
			}
		}
	}
}

func TestDequantizeAgreesWithReference(t *testing.T) {
	requireAccelerated(t)
	q8 := make([]int8, 256+7)
	u8 := make([]uint8, len(q8))
	for i := range q8 {
		q8[i], u8[i] = int8(i), uint8(i)
	}
	for _, c := range []struct {
		scale float32
		zp    int32
	}{{0.1, 0}, {0.0123, -5}, {7, 100}} {
		d := make([]float32, len(q8))
		n := simd.DequantizeInt8(d, q8, c.scale, c.zp)
		require.Equal(t, len(q8)&^7, n)
		for i := range n {
			require.Equal(t, float32(int32(q8[i])-c.zp)*c.scale, d[i])
		}
		n = simd.DequantizeUint8(d, u8, c.scale, c.zp+128)
		require.Equal(t, len(u8)&^7, n)
		for i := range n {
			require.Equal(t, float32(int32(u8[i])-c.zp-128)*c.scale, d[i])
		}
	}
}
