package simd

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// refInt4Block encodes one block as package quant defines it: d = m/-8
// with m the first value of largest magnitude (0 when 1/d is infinite),
// codes roundeven(clamp(x·(1/d), -8, 7)) + 8, element 2i in the low
// nibble of byte i. ok is false for a block holding NaN or ±Inf.
func refInt4Block(x []float32) (d float32, codes []byte, ok bool) {
	var m, am float32
	for _, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return 0, nil, false
		}
		if a := float32(math.Abs(float64(v))); a > am {
			m, am = v, a
		}
	}
	d = m / -8
	var inv float32
	if d != 0 && !math.IsInf(float64(1/d), 0) {
		inv = 1 / d
	} else {
		d = 0
	}
	codes = make([]byte, (len(x)+1)/2)
	for i, v := range x {
		q := math.RoundToEven(float64(max(-8, min(7, v*inv)))) + 8
		codes[i/2] |= byte(q) << (4 * (i & 1))
	}
	return d, codes, true
}

// int4Data returns n values in blocks of bs that stress the encoding:
// all-zero and signed-zero blocks, subnormal blocks, blocks whose largest
// magnitude appears with both signs, exact ties of x/d, and random ones.
func int4Data(n, bs int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 11))
	x := make([]float32, n)
	for start := 0; start < n; start += bs {
		blk := x[start:min(start+bs, n)]
		switch r.IntN(7) {
		case 0: // zeros, some negative
			for i := range blk {
				if r.IntN(2) == 0 {
					blk[i] = float32(math.Copysign(0, -1))
				}
			}
		case 1: // subnormal: m/-8 underflows, or 1/d overflows
			for i := range blk {
				blk[i] = math.Float32frombits(uint32(r.IntN(64))) * float32(1-2*r.IntN(2))
			}
		case 2: // ±a both present; the first decides the sign of d
			a := float32(r.ExpFloat64())
			for i := range blk {
				blk[i] = float32(r.NormFloat64()) * a / 4
			}
			blk[r.IntN(len(blk))] = a
			blk[r.IntN(len(blk))] = -a
		case 3: // ties: multiples of d/2 with d = 1
			for i := range blk {
				blk[i] = float32(r.IntN(31)-15) / 2
			}
			blk[0] = 8
		default:
			s := float32(math.Exp(r.NormFloat64() * 10))
			for i := range blk {
				blk[i] = float32(r.NormFloat64()) * s
			}
		}
	}
	return x
}

func checkInt4Blocks(t *testing.T, x []float32, bs int) int {
	t.Helper()
	nb := len(x) / bs
	scales := make([]float32, nb)
	data := make([]byte, nb*bs/2)
	done := QuantizeInt4Blocks(data, scales, x, bs)
	for k := range done {
		d, codes, ok := refInt4Block(x[k*bs : (k+1)*bs])
		require.True(t, ok, "encoded block %d holding a non-finite value", k)
		require.Equal(t, math.Float32bits(d), math.Float32bits(scales[k]), "block %d scale", k)
		require.Equal(t, codes, data[k*bs/2:(k+1)*bs/2], "block %d codes (bs %d)", k, bs)
	}
	if done < nb {
		_, _, ok := refInt4Block(x[done*bs : (done+1)*bs])
		require.False(t, ok, "stopped before block %d, which is finite", done)
	}
	// Decoding whatever was encoded: float32(code-8)·d, bit for bit.
	back := make([]float32, done*bs)
	require.Equal(t, done, DequantizeInt4Blocks(back, data, scales[:done], bs))
	for i, v := range back {
		c := int32(data[i/2]>>(4*(i&1))) & 15
		require.Equal(t, math.Float32bits(float32(c-8)*scales[i/bs]), math.Float32bits(v), "decoded %d", i)
	}
	return done
}

func TestInt4Blocks(t *testing.T) {
	if !Convert {
		require.Zero(t, QuantizeInt4Blocks(make([]byte, 16), make([]float32, 2), make([]float32, 32), 16))
		return
	}
	for _, wide := range widths() {
		setWide(t, wide)
		for _, bs := range []int{16, 32, 48, 64, 128, 256} {
			for _, n := range []int{0, bs - 1, bs, 2*bs + 3, 37 * bs} {
				for off := range 3 {
					x := int4Data(n+off, bs, uint64(bs+n))[off:]
					require.Equal(t, n/bs, checkInt4Blocks(t, x, bs), "bs %d n %d wide %v", bs, n, wide)
				}
			}
		}
	}
	// Block sizes the kernels do not take are left to the caller.
	require.Zero(t, QuantizeInt4Blocks(make([]byte, 64), make([]float32, 8), make([]float32, 128), 8))
	require.Zero(t, QuantizeInt4Blocks(make([]byte, 64), make([]float32, 8), make([]float32, 128), 0))
	require.Zero(t, DequantizeInt4Blocks(make([]float32, 128), make([]byte, 64), make([]float32, 8), 24))
	// Short scales or data bound the blocks done.
	require.Equal(t, 2, QuantizeInt4Blocks(make([]byte, 64), make([]float32, 2), make([]float32, 128), 16))
	require.Equal(t, 3, DequantizeInt4Blocks(make([]float32, 128), make([]byte, 24), make([]float32, 8), 16))
}

func TestInt4BlocksStopAtNonFinite(t *testing.T) {
	if !Convert {
		return
	}
	for _, wide := range widths() {
		setWide(t, wide)
		for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
			for _, at := range []int{0, 15, 16, 40, 95} {
				x := int4Data(96, 16, 3)
				x[at] = bad
				require.Equal(t, at/16, checkInt4Blocks(t, x, 16), "%v at %d", bad, at)
			}
		}
	}
}

// FuzzInt4Blocks compares the int4 kernels with refInt4Block on
// arbitrary bit patterns and block sizes.
func FuzzInt4Blocks(f *testing.F) {
	f.Add(make([]byte, 4*64), uint8(1))
	f.Add([]byte{0, 0, 0, 65, 0, 0, 0, 193, 0, 0, 0, 63}, uint8(0))
	f.Fuzz(func(t *testing.T, raw []byte, size uint8) {
		if !Convert {
			return
		}
		bs := 16 * (1 + int(size%4))
		x := make([]float32, len(raw)/4)
		for i := range x {
			x[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		for _, wide := range widths() {
			setWide(t, wide)
			checkInt4Blocks(t, x, bs)
		}
	})
}

func BenchmarkInt4Blocks(b *testing.B) {
	if !Convert {
		b.Skip("no conversion kernels in this build")
	}
	x := int4Data(1<<16, 32, 1)
	for i := range x {
		x[i] = float32(i%97) - 48
	}
	scales := make([]float32, len(x)/32)
	data := make([]byte, len(x)/2)
	out := make([]float32, len(x))
	b.Run("quantize", func(b *testing.B) {
		b.SetBytes(4 << 16)
		for b.Loop() {
			QuantizeInt4Blocks(data, scales, x, 32)
		}
	})
	b.Run("dequantize", func(b *testing.B) {
		b.SetBytes(4 << 16)
		for b.Loop() {
			DequantizeInt4Blocks(out, data, scales, 32)
		}
	})
}
