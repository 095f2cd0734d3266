package quant

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestInt4Layout(t *testing.T) {
	// One block whose largest magnitude is -4: scale 0.5, -4 -> -8.
	x := []float32{-4, 3.5, 0, 0.25, 0.75, 1}
	b, err := QuantizeInt4(x, 0)
	require.NoError(t, err)
	require.Equal(t, DefaultInt4BlockSize, b.BlockSize)
	require.Equal(t, []float32{0.5}, b.Scales)
	// Codes q: -8, 7, 0, 0 (0.5 ties to even), 2 (1.5 ties to even), 2;
	// stored as q+8, even elements in the low nibble.
	require.Equal(t, []byte{0x0 | 0xf<<4, 0x8 | 0x8<<4, 0xa | 0xa<<4}, b.Data)
	back := make([]float32, len(x))
	require.NoError(t, b.Dequantize(back))
	require.Equal(t, []float32{-4, 3.5, 0, 0, 1, 1}, back)
	require.Equal(t, 3+4, b.Bytes())
}

func TestInt4RoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
	for _, tc := range []struct{ n, block int }{{1000, 32}, {33, 32}, {7, 4}, {64, 0}, {5, 1}} {
		x := randn(r, tc.n, 1)
		copy(x[min(3, tc.n-1):], []float32{0}) // an exact zero survives
		b, err := QuantizeInt4(x, tc.block)
		require.NoError(t, err)
		require.NoError(t, b.Validate())
		back := make([]float32, tc.n)
		require.NoError(t, b.Dequantize(back))
		for i, v := range x {
			// Codes span [-8, 7] with the block's extreme at -8, so values
			// of the opposite sign beyond 7.5 steps saturate (error < d).
			d := float64(b.Scales[i/b.BlockSize])
			bound := math.Abs(d) / 2
			if d != 0 && float64(v)/d > 7.5 {
				bound = math.Abs(d)
			}
			require.LessOrEqual(t, math.Abs(float64(v-back[i])), bound*1.0001+1e-7, "element %d", i)
		}
		if tc.n >= 32 {
			rep, err := Compare(x, back)
			require.NoError(t, err)
			require.Greater(t, rep.Cosine, 0.99)
		}
	}
}

func TestInt4EdgeCases(t *testing.T) {
	b, err := QuantizeInt4(make([]float32, 40), 32)
	require.NoError(t, err)
	require.Equal(t, []float32{0, 0}, b.Scales)
	back := make([]float32, 40)
	require.NoError(t, b.Dequantize(back))
	require.Equal(t, make([]float32, 40), back)

	b, err = QuantizeInt4(nil, 32)
	require.NoError(t, err)
	require.Zero(t, b.N)
	require.NoError(t, b.Dequantize(nil))

	// Subnormal block: no division by zero, no Inf.
	b, err = QuantizeInt4([]float32{1e-45, -1e-45}, 32)
	require.NoError(t, err)
	require.NoError(t, b.Validate())

	_, err = QuantizeInt4([]float32{1, float32(math.NaN())}, 32)
	require.ErrorIs(t, err, ErrNonFinite)
	_, err = QuantizeInt4([]float32{float32(math.Inf(1))}, 32)
	require.ErrorIs(t, err, ErrNonFinite)
	_, err = QuantizeInt4([]float32{1}, -1)
	require.ErrorIs(t, err, ErrShape)

	good, err := QuantizeInt4(make([]float32, 40), 32)
	require.NoError(t, err)
	bad := []*Int4Blocks{
		nil,
		{N: -1, BlockSize: 32},
		{N: 40, BlockSize: 0},
		{N: 40, BlockSize: 32, Scales: good.Scales[:1], Data: good.Data},
		{N: 40, BlockSize: 32, Scales: good.Scales, Data: good.Data[:19]},
		{N: 40, BlockSize: 32, Scales: []float32{1, float32(math.NaN())}, Data: good.Data},
	}
	for i, b := range bad {
		require.ErrorIs(t, b.Validate(), ErrFormat, "case %d", i)
		require.ErrorIs(t, b.Dequantize(make([]float32, 40)), ErrFormat, "case %d", i)
	}
	require.ErrorIs(t, good.Dequantize(make([]float32, 39)), ErrShape)
}

// requireInt4Equal checks two encodings bit for bit.
func requireInt4Equal(t *testing.T, want, got *Int4Blocks) {
	t.Helper()
	require.Equal(t, want.N, got.N)
	require.Equal(t, want.BlockSize, got.BlockSize)
	require.Equal(t, len(want.Scales), len(got.Scales))
	for k := range want.Scales {
		require.Equal(t, math.Float32bits(want.Scales[k]), math.Float32bits(got.Scales[k]), "scale %d", k)
	}
	require.Equal(t, want.Data, got.Data)
}

// TestInt4KernelMatchesGo compares QuantizeInt4 and Dequantize, which run
// the SIMD kernels on whole blocks, with the Go loop alone, on block sizes
// the kernels take and ones they leave to Go, partial last blocks, and
// blocks of zeros, subnormals, ties and ±max pairs.
func TestInt4KernelMatchesGo(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 13))
	for _, bs := range []int{16, 32, 64, 128, 24, 7} {
		for _, n := range []int{1, bs, 3*bs + 5, 101 * bs} {
			x := randn(r, n, float64(r.ExpFloat64()*10))
			for k := 0; k < n; k += bs {
				blk := x[k:min(k+bs, n)]
				switch (k / bs) % 5 {
				case 1:
					clear(blk)
				case 2:
					for i := range blk {
						blk[i] = math.Float32frombits(uint32(r.IntN(100)))
					}
				case 3:
					for i := range blk {
						blk[i] = float32(r.IntN(31)-15) / 2
					}
					blk[0] = 8
				case 4:
					blk[len(blk)-1] = -blk[0]
				}
			}
			want, err := quantizeInt4(x, bs, false)
			require.NoError(t, err)
			got, err := QuantizeInt4(x, bs)
			require.NoError(t, err)
			requireInt4Equal(t, want, got)
			wantF := make([]float32, n)
			got.decode(wantF, 0)
			gotF := make([]float32, n)
			require.NoError(t, got.Dequantize(gotF))
			requireBitsEqual(t, wantF, gotF)
		}
	}
	// A non-finite value past the kernel's first blocks is reported with
	// its index, as by the Go loop.
	x := randn(r, 32*10, 1)
	x[200] = float32(math.Inf(-1))
	_, err := QuantizeInt4(x, 32)
	require.ErrorIs(t, err, ErrNonFinite)
	require.Contains(t, err.Error(), "x[200]")
}

// FuzzQuantizeInt4 compares the SIMD path with the Go loop on arbitrary
// float32 bit patterns.
func FuzzQuantizeInt4(f *testing.F) {
	f.Add(make([]byte, 4*40), uint8(0))
	f.Add([]byte{0, 0, 128, 127, 0, 0, 0, 0, 1, 0, 0, 128}, uint8(3))
	f.Fuzz(func(t *testing.T, raw []byte, size uint8) {
		bs := []int{16, 32, 64, 5}[size%4]
		x := make([]float32, len(raw)/4)
		for i := range x {
			x[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		want, werr := quantizeInt4(x, bs, false)
		got, gerr := QuantizeInt4(x, bs)
		if werr != nil {
			require.Error(t, gerr)
			require.Equal(t, werr.Error(), gerr.Error())
			return
		}
		require.NoError(t, gerr)
		requireInt4Equal(t, want, got)
		wantF := make([]float32, len(x))
		got.decode(wantF, 0)
		gotF := make([]float32, len(x))
		require.NoError(t, got.Dequantize(gotF))
		requireBitsEqual(t, wantF, gotF)
	})
}
