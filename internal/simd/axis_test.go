package simd

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// refChannel is the definition the channel kernels compute: the float32
// quotient rounded half to even, plus the zero point, saturated.
func refChannel(x, s float32, zp, qlo, qhi int32) (int32, bool) {
	v := x / s
	if v != v {
		return 0, false
	}
	r := math.RoundToEven(float64(v)) + float64(zp)
	return int32(max(float64(qlo), min(float64(qhi), r))), true
}

// channelData returns n values and per-channel scales that stress
// rounding and saturation: exact ties, values one ulp off a tie, ±Inf,
// ±0, huge and subnormal values, and scales from tiny to huge.
func channelData(n int, seed uint64) (x, scales []float32) {
	r := rand.New(rand.NewPCG(seed, 7))
	x = make([]float32, n)
	scales = make([]float32, n)
	for i := range x {
		s := float32(math.Exp(r.NormFloat64() * 2))
		switch r.IntN(20) {
		case 0:
			s = 1e-38
		case 1:
			s = 3e38
		case 2:
			s = math.SmallestNonzeroFloat32
		}
		scales[i] = s
		switch r.IntN(8) {
		case 0:
			x[i] = (float32(r.IntN(800)-400) + 0.5) * s
		case 1:
			x[i] = math.Nextafter32((float32(r.IntN(800)-400)+0.5)*s, float32(r.NormFloat64()))
		case 2:
			x[i] = []float32{float32(math.Inf(1)), float32(math.Inf(-1)), 0, float32(math.Copysign(0, -1)),
				math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32, 1e-40}[r.IntN(8)]
		default:
			x[i] = float32(r.NormFloat64()) * s * 150
		}
	}
	return x, scales
}

// channelCase quantizes x with the int8 or uint8 kernel and checks every
// converted element against refChannel; it returns how many were done.
func channelCase(t *testing.T, x, scales []float32, zps []int32, unsigned bool) int {
	t.Helper()
	qlo, qhi := int32(-128), int32(127)
	if unsigned {
		qlo, qhi = 0, 255
	}
	got := make([]int32, len(x))
	var n int
	if unsigned {
		d := make([]uint8, len(x))
		var z []uint8
		if zps != nil {
			z = make([]uint8, len(zps))
			for i, v := range zps {
				z[i] = uint8(v)
			}
		}
		n = QuantizeUint8Channels(d, x, scales, z)
		for i := range n {
			got[i] = int32(d[i])
		}
	} else {
		d := make([]int8, len(x))
		var z []int8
		if zps != nil {
			z = make([]int8, len(zps))
			for i, v := range zps {
				z[i] = int8(v)
			}
		}
		n = QuantizeInt8Channels(d, x, scales, z)
		for i := range n {
			got[i] = int32(d[i])
		}
	}
	for i := range n {
		var zp int32
		if zps != nil {
			zp = zps[i]
		}
		want, ok := refChannel(x[i], scales[i], zp, qlo, qhi)
		require.True(t, ok, "converted a NaN at %d", i)
		require.Equal(t, want, got[i], "i=%d x=%g scale=%g zp=%d unsigned=%v", i, x[i], scales[i], zp, unsigned)
	}
	return n
}

func zeroPointsFor(n int, unsigned bool, seed uint64) []int32 {
	r := rand.New(rand.NewPCG(seed, 3))
	z := make([]int32, n)
	for i := range z {
		if unsigned {
			z[i] = int32(r.IntN(256))
		} else {
			z[i] = int32(r.IntN(256) - 128)
		}
	}
	return z
}

func TestQuantizeChannels(t *testing.T) {
	if !Convert {
		require.Zero(t, QuantizeInt8Channels(make([]int8, 64), make([]float32, 64), make([]float32, 64), nil))
		return
	}
	for _, wide := range widths() {
		setWide(t, wide)
		lens := []int{}
		for n := range 68 {
			lens = append(lens, n)
		}
		lens = append(lens, 255, 1000, 4099)
		for _, n := range lens {
			for off := range 3 {
				x, scales := channelData(n+off, uint64(n))
				x, scales = x[off:], scales[off:]
				for _, unsigned := range []bool{false, true} {
					for _, withZP := range []bool{false, true} {
						var zps []int32
						if withZP {
							zps = zeroPointsFor(n, unsigned, uint64(n+off))
						}
						done := channelCase(t, x, scales, zps, unsigned)
						require.Equal(t, n&^7, done, "n=%d wide=%v", n, wide)
					}
				}
			}
		}
	}
}

func TestQuantizeChannelsStopsAtNaN(t *testing.T) {
	if !Convert {
		return
	}
	for _, wide := range widths() {
		setWide(t, wide)
		for _, at := range []int{0, 7, 8, 15, 16, 23, 24, 37, 100} {
			x, scales := channelData(128, uint64(at))
			x[at] = float32(math.NaN())
			for _, unsigned := range []bool{false, true} {
				done := channelCase(t, x, scales, zeroPointsFor(128, unsigned, 1), unsigned)
				require.Equal(t, at&^7, done, "NaN at %d wide=%v", at, wide)
			}
			// A quotient can be NaN without a NaN operand: ±Inf / Inf.
			x[at], scales[at] = float32(math.Inf(1)), float32(math.Inf(1))
			require.Equal(t, at&^7, channelCase(t, x, scales, nil, false))
		}
	}
}

func TestDequantizeChannels(t *testing.T) {
	if !Convert {
		require.Zero(t, DequantizeInt8Channels(make([]float32, 64), make([]int8, 64), make([]float32, 64), nil))
		return
	}
	for _, wide := range widths() {
		setWide(t, wide)
		testDequantizeChannels(t)
	}
}

func testDequantizeChannels(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	var lens []int
	for n := range 68 {
		lens = append(lens, n)
	}
	for _, n := range append(lens, 1001) {
		for off := range 3 {
			q := make([]int8, n+off)[off:]
			u := make([]uint8, n+off)[off:]
			_, scales := channelData(n, uint64(n))
			zq := make([]int8, n)
			zu := make([]uint8, n)
			for i := range q {
				q[i], u[i] = int8(r.IntN(256)-128), uint8(r.IntN(256))
				zq[i], zu[i] = int8(r.IntN(256)-128), uint8(r.IntN(256))
			}
			for _, withZP := range []bool{false, true} {
				dq := make([]float32, n)
				du := make([]float32, n)
				var nq, nu int
				if withZP {
					nq = DequantizeInt8Channels(dq, q, scales, zq)
					nu = DequantizeUint8Channels(du, u, scales, zu)
				} else {
					nq = DequantizeInt8Channels(dq, q, scales, nil)
					nu = DequantizeUint8Channels(du, u, scales, nil)
				}
				require.Equal(t, n&^7, nq)
				require.Equal(t, n&^7, nu)
				for i := range nq {
					var z8, zu8 int32
					if withZP {
						z8, zu8 = int32(zq[i]), int32(zu[i])
					}
					require.Equal(t, math.Float32bits(float32(int32(q[i])-z8)*scales[i]), math.Float32bits(dq[i]), "int8 i=%d", i)
					require.Equal(t, math.Float32bits(float32(int32(u[i])-zu8)*scales[i]), math.Float32bits(du[i]), "uint8 i=%d", i)
				}
			}
		}
	}
}

// FuzzQuantizeChannels compares the channel kernels, on every width this
// CPU runs, with refChannel on arbitrary values and scales.
func FuzzQuantizeChannels(f *testing.F) {
	f.Add(make([]byte, 9*16), false)
	f.Add([]byte{0, 0, 0, 63, 0, 0, 128, 63, 3, 0, 0, 192, 62, 0, 0, 128, 63, 250}, true)
	f.Fuzz(func(t *testing.T, raw []byte, unsigned bool) {
		if !Convert {
			return
		}
		n := len(raw) / 9
		x := make([]float32, n)
		scales := make([]float32, n)
		zps := make([]int32, n)
		for i := range n {
			x[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[9*i:]))
			s := math.Float32frombits(binary.LittleEndian.Uint32(raw[9*i+4:]) &^ (1 << 31))
			if !(s > 0) || s > math.MaxFloat32 {
				s = 1 // the callers reject other scales
			}
			scales[i] = s
			zps[i] = int32(int8(raw[9*i+8]))
			if unsigned {
				zps[i] = int32(raw[9*i+8])
			}
		}
		for _, wide := range widths() {
			setWide(t, wide)
			done := channelCase(t, x, scales, zps, unsigned)
			// It stops only before a group of 8 holding a NaN quotient.
			if done < n&^7 {
				nan := false
				for _, v := range x[done : done+8] {
					nan = nan || v != v
				}
				for i := done; i < done+8; i++ {
					v := x[i] / scales[i]
					nan = nan || v != v
				}
				require.True(t, nan, "stopped at %d of %d without a NaN", done, n)
			}
		}
	})
}
