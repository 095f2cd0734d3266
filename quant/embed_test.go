package quant

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func randInt8(r *rand.Rand, n int) []int8 {
	x := make([]int8, n)
	for i := range x {
		x[i] = int8(r.IntN(256) - 128)
	}
	return x
}

func TestInt8Kernels(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for n := range 70 {
		a, b := randInt8(r, n), randInt8(r, n)
		var dot, l2 int32
		for i := range a {
			dot += int32(a[i]) * int32(b[i])
			d := int32(a[i]) - int32(b[i])
			l2 += d * d
		}
		require.Equal(t, dot, DotInt8(a, b), "n=%d", n)
		require.Equal(t, l2, L2SqInt8(a, b), "n=%d", n)
		// Longer second argument: the common prefix is used.
		require.Equal(t, dot, DotInt8(a, append(b, 5, 5)))
		require.Equal(t, l2, L2SqInt8(append(a, 1), b))
	}
	// Extremes at 384 dimensions.
	lo := make([]int8, 384)
	hi := make([]int8, 384)
	for i := range lo {
		lo[i], hi[i] = -128, 127
	}
	require.Equal(t, int32(384*128*128), DotInt8(lo, lo))
	require.Equal(t, int32(384*255*255), L2SqInt8(lo, hi))
}

func TestBinaryCodes(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	for _, dim := range []int{0, 1, 63, 64, 65, 384} {
		a, b := randn(r, dim, 1), randn(r, dim, 1)
		ca, cb := BinaryCodes(a), BinaryCodes(b)
		require.Len(t, ca, BinaryCodeWords(dim))
		want := 0
		for i := range a {
			require.Equal(t, a[i] > 0, ca[i/64]>>(i%64)&1 == 1)
			if (a[i] > 0) != (b[i] > 0) {
				want++
			}
		}
		require.Equal(t, want, Hamming(ca, cb), "dim %d", dim)
	}
	c := BinaryCodes([]float32{float32(math.NaN()), 0, float32(math.Copysign(0, -1)), 1, float32(math.Inf(-1))})
	require.Equal(t, []uint64{0b01000}, c)
	// Appending reuses capacity.
	buf := make([]uint64, 0, 8)
	out := AppendBinaryCodes(buf, make([]float32, 130))
	require.Len(t, out, 3)
	require.Equal(t, &buf[:1][0], &out[0])
	require.Equal(t, 3, Hamming([]uint64{0b111, 1}, []uint64{0, 1, 0xff}))
	require.Equal(t, 0, bits.OnesCount64(out[2]))
}

func fitVectors(r *rand.Rand, n, dim int) [][]float32 {
	v := make([][]float32, n)
	for i := range v {
		v[i] = randn(r, dim, 1)
		for d := range v[i] {
			v[i][d] = v[i][d]*float32(1+d%4) + float32(d%3) // uneven spreads and offsets
		}
	}
	return v
}

func TestScalarQuantizer(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	vecs := fitVectors(r, 200, 48)
	for _, perDim := range []bool{false, true} {
		q := &ScalarQuantizer{PerDimension: perDim}
		require.NoError(t, q.Fit(vecs))
		require.Equal(t, 48, q.Dim())
		if perDim {
			require.Zero(t, q.Scale())
		} else {
			require.Greater(t, q.Scale(), float32(0))
		}
		codes := make([][]int8, len(vecs))
		var worst float64
		for i, v := range vecs {
			codes[i] = make([]int8, 48)
			require.NoError(t, q.Encode(codes[i], v))
			back := make([]float32, 48)
			require.NoError(t, q.Decode(back, codes[i]))
			rep, err := Compare(v, back)
			require.NoError(t, err)
			worst = math.Max(worst, rep.MaxAbs)
			require.Greater(t, rep.Cosine, 0.999)
		}
		// Inside the fitted range the error is at most half a step.
		f := q.fit.Load()
		bound := 0.0
		for _, s := range f.scale {
			bound = math.Max(bound, float64(s)/2*1.001)
		}
		require.LessOrEqual(t, worst, bound, "perDim=%v", perDim)

		// Distances from codes track distances of the decoded vectors.
		for i := 0; i+1 < len(vecs); i += 7 {
			a, b := make([]float32, 48), make([]float32, 48)
			require.NoError(t, q.Decode(a, codes[i]))
			require.NoError(t, q.Decode(b, codes[i+1]))
			var dot, l2 float64
			for d := range a {
				dot += float64(a[d]) * float64(b[d])
				l2 += float64(a[d]-b[d]) * float64(a[d]-b[d])
			}
			gotDot, err := q.Dot(codes[i], codes[i+1])
			require.NoError(t, err)
			gotL2, err := q.L2Sq(codes[i], codes[i+1])
			require.NoError(t, err)
			require.InDelta(t, dot, float64(gotDot), 1e-3*math.Max(1, math.Abs(dot)))
			require.InDelta(t, l2, float64(gotL2), 1e-3*math.Max(1, l2))
		}
	}
}

func TestScalarQuantizerPerDimensionIsMorePrecise(t *testing.T) {
	r := rand.New(rand.NewPCG(27, 28))
	vecs := fitVectors(r, 500, 64)
	mse := func(perDim bool) float64 {
		q := &ScalarQuantizer{PerDimension: perDim}
		require.NoError(t, q.Fit(vecs))
		var sum float64
		code, back := make([]int8, 64), make([]float32, 64)
		for _, v := range vecs {
			require.NoError(t, q.Encode(code, v))
			require.NoError(t, q.Decode(back, code))
			rep, err := Compare(v, back)
			require.NoError(t, err)
			sum += rep.MSE
		}
		return sum
	}
	require.Less(t, mse(true), mse(false)/2)
}

func TestScalarQuantizerBadInput(t *testing.T) {
	var q ScalarQuantizer
	code := make([]int8, 3)
	require.ErrorIs(t, q.Encode(code, []float32{1, 2, 3}), ErrNotFitted)
	require.ErrorIs(t, q.Decode(make([]float32, 3), code), ErrNotFitted)
	_, err := q.Dot(code, code)
	require.ErrorIs(t, err, ErrNotFitted)
	require.Zero(t, q.Dim())

	require.ErrorIs(t, q.Fit(nil), ErrEmpty)
	require.ErrorIs(t, q.Fit([][]float32{{}}), ErrShape)
	require.ErrorIs(t, q.Fit([][]float32{{1, 2}, {1}}), ErrShape)
	require.ErrorIs(t, q.Fit([][]float32{{1, float32(math.NaN())}}), ErrNonFinite)

	require.NoError(t, q.Fit([][]float32{{1, -2, 3}, {0, 0, 0}}))
	require.ErrorIs(t, q.Fit([][]float32{{float32(math.Inf(1))}}), ErrNonFinite)
	require.Equal(t, 3, q.Dim(), "failed Fit keeps the previous fit")

	require.ErrorIs(t, q.Encode(code, []float32{1, 2}), ErrShape)
	require.ErrorIs(t, q.Encode(code[:2], []float32{1, 2, 3}), ErrShape)
	require.ErrorIs(t, q.Decode(make([]float32, 2), code), ErrShape)
	_, err = q.L2Sq(code, code[:1])
	require.ErrorIs(t, err, ErrShape)

	// NaN encodes as 0, ±Inf and out-of-range values saturate.
	require.NoError(t, q.Encode(code, []float32{float32(math.NaN()), float32(math.Inf(-1)), 1e9}))
	require.Equal(t, []int8{0, -127, 127}, code)

	// Constant data: scale 0, everything encodes to 0, decodes to the constant.
	z := &ScalarQuantizer{PerDimension: true}
	require.NoError(t, z.Fit([][]float32{{2, 0}, {2, 0}}))
	require.NoError(t, z.Encode(code[:2], []float32{5, -1}))
	require.Equal(t, []int8{0, 0}, code[:2])
	back := make([]float32, 2)
	require.NoError(t, z.Decode(back, code[:2]))
	require.Equal(t, []float32{2, 0}, back)
	g := &ScalarQuantizer{}
	require.NoError(t, g.Fit([][]float32{{0, 0}}))
	require.NoError(t, g.Encode(code[:2], []float32{5, -1}))
	require.Equal(t, []int8{0, 0}, code[:2])
	require.NoError(t, g.Decode(back, code[:2]))
	require.Equal(t, []float32{0, 0}, back)
}

func TestScalarQuantizerConcurrentRefit(t *testing.T) {
	r := rand.New(rand.NewPCG(29, 30))
	a, b := fitVectors(r, 50, 16), fitVectors(r, 50, 16)
	var q ScalarQuantizer
	require.NoError(t, q.Fit(a))
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 50 {
			require.NoError(t, q.Fit([][][]float32{a, b}[i%2]))
		}
	})
	for range 2 {
		wg.Go(func() {
			code := make([]int8, 16)
			for _, v := range a {
				require.NoError(t, q.Encode(code, v))
				_, err := q.Dot(code, code)
				require.NoError(t, err)
			}
		})
	}
	wg.Wait()
}
