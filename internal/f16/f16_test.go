package f16

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// The references below compute in float64 from the definitions of the
// formats, independently of the bit tricks under test.

// refToFloat32 decodes binary16 bits: (-1)^s · 1.m · 2^(e-15), or
// 0.m · 2^-14 for e = 0.
func refToFloat32(h uint16) float64 {
	s, e, m := h>>15, int(h>>10)&0x1f, float64(h&0x3ff)
	var v float64
	switch e {
	case 0x1f:
		if m != 0 {
			return math.NaN()
		}
		v = math.Inf(1)
	case 0:
		v = math.Ldexp(m, -24)
	default:
		v = math.Ldexp(1024+m, e-25)
	}
	if s == 1 {
		v = -v
	}
	return v
}

// refFromFloat32 rounds a finite f to the binary16 grid: the grid step is
// 2^(exponent-10), and 2^-24 below the normals; values at or past 65520
// (halfway to 2^16) round to Inf.
func refFromFloat32(f float32) uint16 {
	a := math.Abs(float64(f))
	var sign uint16
	if math.Signbit(float64(f)) {
		sign = 0x8000
	}
	if a >= 65520 {
		return sign | 0x7c00
	}
	step := math.Ldexp(1, -24)
	if a >= 0x1p-14 {
		_, exp := math.Frexp(a) // a = frac · 2^exp, frac in [0.5, 1)
		step = math.Ldexp(1, exp-1-10)
	}
	v := math.RoundToEven(a/step) * step // exact: a/step has at most 24 significant bits
	if v < 0x1p-14 {
		return sign | uint16(v/0x1p-24)
	}
	frac, exp := math.Frexp(v)
	e := exp - 1 + 15
	m := uint16(frac*2048) - 1024
	return sign | uint16(e)<<10 | m
}

// checkNaN16 checks the NaN that FromFloat32 makes of the float32 NaN f.
func checkNaN16(t *testing.T, f float32, h uint16) {
	t.Helper()
	b := math.Float32bits(f)
	require.Equal(t, uint16(0x7c00), h&0x7c00, "%#08x -> %#04x: exponent all ones", b, h)
	require.NotZero(t, h&0x200, "%#08x -> %#04x: quiet", b, h)
	require.Equal(t, uint16(b>>16)&0x8000, h&0x8000, "%#08x -> %#04x: sign kept", b, h)
	require.Equal(t, uint16(b>>13)&0x1ff, h&0x1ff, "%#08x -> %#04x: payload kept", b, h)
}

func TestToFloat32Exhaustive(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		got := ToFloat32(h)
		want := refToFloat32(h)
		if math.IsNaN(want) {
			require.True(t, math.IsNaN(float64(got)), "%#04x", h)
			require.Equal(t, uint32(h&0x3ff|0x200), math.Float32bits(got)>>13&0x3ff, "%#04x: payload kept, quieted", h)
			require.Equal(t, uint32(h>>15), math.Float32bits(got)>>31, "%#04x: sign kept", h)
			checkNaN16(t, got, FromFloat32(got))
			require.Equal(t, h|0x200, FromFloat32(got), "NaN round trip, quieted")
			continue
		}
		require.Equal(t, math.Float64bits(want), math.Float64bits(float64(got)), "%#04x", h)
		require.Equal(t, h, FromFloat32(got), "round trip of %#04x (%v)", h, got)
	}
}

// lowPatterns are the float32 mantissa bits below binary16's that decide
// rounding: zero, just above zero, just below, at and around the halfway
// point, all ones.
var lowPatterns = []uint32{0, 1, 0x0fff, 0x1000, 0x1001, 0x1fff, 0x0800, 0x1800}

// TestFromFloat32Sweep covers every sign, exponent and top-10 mantissa of
// float32 with every rounding pattern of the bits below: each rounding
// boundary of every binade, the subnormal range, overflow and NaN.
func TestFromFloat32Sweep(t *testing.T) {
	for sign := range uint32(2) {
		for exp := range uint32(256) {
			for hi := range uint32(1024) {
				for _, lo := range lowPatterns {
					b := sign<<31 | exp<<23 | hi<<13 | lo
					f := math.Float32frombits(b)
					got := FromFloat32(f)
					if exp == 0xff && hi|lo != 0 {
						checkNaN16(t, f, got)
						continue
					}
					if got != refFromFloat32(f) {
						require.Equal(t, refFromFloat32(f), got, "bits %#08x (%v)", b, f)
					}
				}
			}
		}
	}
}

func TestFromFloat32Random(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for range 1 << 20 {
		b := r.Uint32()
		f := math.Float32frombits(b)
		got := FromFloat32(f)
		if math.IsNaN(float64(f)) {
			checkNaN16(t, f, got)
			continue
		}
		if got != refFromFloat32(f) {
			require.Equal(t, refFromFloat32(f), got, "bits %#08x (%v)", b, f)
		}
	}
}

func TestFromFloat32Values(t *testing.T) {
	cases := []struct {
		f    float32
		want uint16
	}{
		{1, 0x3c00},
		{-2, 0xc000},
		{65504, 0x7bff},
		{65519.996, 0x7bff},
		{65520, 0x7c00}, // halfway to the next binade rounds to Inf
		{1e10, 0x7c00},
		{float32(math.Inf(1)), 0x7c00},
		{float32(math.Inf(-1)), 0xfc00},
		{0x1p-24, 0x0001},               // smallest subnormal
		{0x1p-25, 0x0000},               // tie between 0 and 2^-24: even is 0
		{0x1.8p-25, 0x0001},             // above the tie
		{0x1.8p-24, 0x0002},             // tie between 1 and 2 subnormal units: even is 2
		{0x1p-14, 0x0400},               // smallest normal
		{0x1.ff8p-15, 0x03ff},           // largest subnormal
		{0x1.ffcp-15, 0x0400},           // tie with the smallest normal: even rounds up into it
		{1 + 0x1p-11, 0x3c00},           // tie, even mantissa stays
		{1 + 0x3p-11, 0x3c02},           // tie, odd mantissa rounds up
		{1 + 0x1p-11 + 0x1p-23, 0x3c01}, // just above the tie
		{0.1, 0x2e66},
		{float32(math.Copysign(0, -1)), 0x8000},
		{-1e-30, 0x8000},
		{math.Float32frombits(0x7fc00000), 0x7e00}, // the default quiet NaN
		{math.Float32frombits(0xff800001), 0xfe00}, // a signalling NaN with its payload in the low bits stays NaN
		{math.Float32frombits(0x7fbfe000), 0x7fff}, // payload bits kept, quiet bit set
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, FromFloat32(tc.f), "FromFloat32(%v) bits %#08x", tc.f, math.Float32bits(tc.f))
	}
}

// refBF16FromFloat32 picks, for a finite f, the nearer of the two bfloat16
// neighbours of f, ties to the even one; the neighbour past the largest
// finite bfloat16 counts as 2^128 and is Inf.
func refBF16FromFloat32(f float32) uint16 {
	b := math.Float32bits(f)
	lo := uint16(b >> 16) // toward zero
	if b&0xffff == 0 {
		return lo
	}
	hi := lo + 1 // away from zero
	loV := math.Abs(float64(BF16ToFloat32(lo)))
	hiV := math.Abs(float64(BF16ToFloat32(hi)))
	if math.IsInf(hiV, 0) {
		hiV = 0x1p128
	}
	a := math.Abs(float64(f))
	switch dl, dh := a-loV, hiV-a; {
	case dl < dh:
		return lo
	case dh < dl:
		return hi
	case lo&1 == 0:
		return lo
	}
	return hi
}

func TestBF16ToFloat32Exhaustive(t *testing.T) {
	for i := range 1 << 16 {
		b := uint16(i)
		got := BF16ToFloat32(b)
		s, e, m := b>>15, int(b>>7)&0xff, float64(b&0x7f)
		var want float64
		switch e {
		case 0xff:
			want = math.Inf(1)
			if m != 0 {
				want = math.NaN()
			}
		case 0:
			want = math.Ldexp(m, -133)
		default:
			want = math.Ldexp(128+m, e-134)
		}
		if s == 1 {
			want = -want
		}
		if math.IsNaN(want) {
			require.True(t, math.IsNaN(float64(got)), "%#04x", b)
			require.Equal(t, b|0x40, BF16FromFloat32(got), "NaN round trip of %#04x, quieted", b)
			continue
		}
		require.Equal(t, math.Float64bits(want), math.Float64bits(float64(got)), "%#04x", b)
		require.Equal(t, b, BF16FromFloat32(got), "round trip of %#04x", b)
	}
}

func TestBF16FromFloat32Sweep(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for top := range uint32(1 << 16) {
		for _, lo := range []uint32{0, 1, 0x7fff, 0x8000, 0x8001, 0xffff, r.Uint32() & 0xffff} {
			b := top<<16 | lo
			f := math.Float32frombits(b)
			got := BF16FromFloat32(f)
			if math.IsNaN(float64(f)) {
				require.True(t, math.IsNaN(float64(BF16ToFloat32(got))), "%#08x -> %#04x", b, got)
				require.Equal(t, uint16(b>>16)|0x40, got, "%#08x: sign and top payload kept, quieted", b)
				continue
			}
			if want := refBF16FromFloat32(f); got != want {
				require.Equal(t, want, got, "bits %#08x (%v)", b, f)
			}
		}
	}
}

func TestSlices(t *testing.T) {
	type myHalf uint16 // the wrappers' named types
	src := []float32{1, -2, 0.1, 65504, 1e10, float32(math.NaN()), 0x1p-24}
	h := make([]myHalf, len(src))
	FromFloat32s(h, src)
	bf := make([]uint16, len(src))
	BF16FromFloat32s(bf, src)
	back := make([]float32, len(src))
	ToFloat32s(back, h)
	backBF := make([]float32, len(src))
	BF16ToFloat32s(backBF, bf)
	for i, v := range src {
		require.Equal(t, FromFloat32(v), uint16(h[i]))
		require.Equal(t, BF16FromFloat32(v), bf[i])
		require.Equal(t, math.Float32bits(ToFloat32(uint16(h[i]))), math.Float32bits(back[i]))
		require.Equal(t, math.Float32bits(BF16ToFloat32(bf[i])), math.Float32bits(backBF[i]))
	}
	// Only the common length is converted.
	short := make([]myHalf, 2)
	FromFloat32s(short, src)
	require.Equal(t, h[:2], short)
	out := []float32{7, 7, 7}
	ToFloat32s(out, h[:1])
	require.Equal(t, []float32{1, 7, 7}, out)
	BF16FromFloat32s(bf[:0], src)
	BF16ToFloat32s(out[:0], bf)
}

func BenchmarkSlices(b *testing.B) {
	const n = 4096
	r := rand.New(rand.NewPCG(1, 2))
	src := make([]float32, n)
	for i := range src {
		src[i] = float32(r.NormFloat64())
	}
	h := make([]uint16, n)
	out := make([]float32, n)
	FromFloat32s(h, src)
	for _, bc := range []struct {
		name string
		f    func()
	}{
		{"FromFloat32s", func() { FromFloat32s(h, src) }},
		{"ToFloat32s", func() { ToFloat32s(out, h) }},
		{"BF16FromFloat32s", func() { BF16FromFloat32s(h, src) }},
		{"BF16ToFloat32s", func() { BF16ToFloat32s(out, h) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(4 * n)
			b.ReportAllocs()
			for b.Loop() {
				bc.f()
			}
		})
	}
}
