package quant

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestScalarQuantizerMarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	vecs := fitVectors(r, 40, 24)
	for _, perDim := range []bool{false, true} {
		q := &ScalarQuantizer{PerDimension: perDim}
		_, err := q.MarshalBinary()
		require.ErrorIs(t, err, ErrNotFitted)
		require.NoError(t, q.Fit(vecs))
		b, err := q.MarshalBinary()
		require.NoError(t, err)

		var back ScalarQuantizer
		require.NoError(t, back.UnmarshalBinary(b))
		require.Equal(t, perDim, back.PerDimension)
		c1, c2 := make([]int8, 24), make([]int8, 24)
		for _, v := range vecs {
			require.NoError(t, q.Encode(c1, v))
			require.NoError(t, back.Encode(c2, v))
			require.Equal(t, c1, c2)
		}
		d1, err := q.Dot(c1, c2)
		require.NoError(t, err)
		d2, err := back.Dot(c1, c2)
		require.NoError(t, err)
		require.Equal(t, d1, d2)

		// Every truncation and every single-byte corruption is rejected and
		// leaves the previous fit in place.
		for n := range b {
			require.ErrorIs(t, back.UnmarshalBinary(b[:n]), ErrFormat, "truncated to %d", n)
		}
		for i := range b {
			bad := append([]byte(nil), b...)
			bad[i] ^= 0x40
			require.ErrorIs(t, back.UnmarshalBinary(bad), ErrFormat, "byte %d flipped", i)
		}
		require.NoError(t, back.Encode(c2, vecs[0]))
		require.NoError(t, q.Encode(c1, vecs[0]))
		require.Equal(t, c1, c2)
	}
}

func FuzzScalarQuantizerUnmarshal(f *testing.F) {
	for _, perDim := range []bool{false, true} {
		q := &ScalarQuantizer{PerDimension: perDim}
		if err := q.Fit([][]float32{{1, -2, 3}, {0.5, 0, -1}}); err != nil {
			f.Fatal(err)
		}
		b, err := q.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte("QSQ1"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var q ScalarQuantizer
		if err := q.UnmarshalBinary(data); err != nil {
			require.ErrorIs(t, err, ErrFormat)
			require.Zero(t, q.Dim())
			return
		}
		// A decoded quantizer works and re-encodes to the same bytes.
		code := make([]int8, q.Dim())
		require.NoError(t, q.Encode(code, make([]float32, q.Dim())))
		b, err := q.MarshalBinary()
		require.NoError(t, err)
		require.Equal(t, data, b)
	})
}
