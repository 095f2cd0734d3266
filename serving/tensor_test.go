package serving

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quiverml/quiver/quant"
	"github.com/stretchr/testify/require"
)

// The conversions here are checked against package quant's, which are
// themselves checked bit for bit against ONNX Runtime's Cast.
func TestHalfConversionsAgreeWithQuant(t *testing.T) {
	for bits := 0; bits < 1<<16; bits++ {
		h := F16(bits)
		want := quant.Float16(bits).Float32()
		got := h.Float32()
		if math.IsNaN(float64(want)) {
			require.True(t, math.IsNaN(float64(got)), "bits %#04x", bits)
			continue
		}
		require.Equal(t, math.Float32bits(want), math.Float32bits(got), "bits %#04x", bits)
		require.Equal(t, uint16(quant.ToFloat16(got)), uint16(F16From(got)), "round trip of %#04x", bits)
		require.Equal(t, uint16(quant.ToBFloat16(got)), uint16(BF16From(got)), "bfloat16 of %g", got)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 200000; i++ {
		f := math.Float32frombits(rng.Uint32())
		if math.IsNaN(float64(f)) {
			require.True(t, math.IsNaN(float64(F16From(f).Float32())))
			require.True(t, math.IsNaN(float64(BF16From(f).Float32())))
			continue
		}
		require.Equal(t, uint16(quant.ToFloat16(f)), uint16(F16From(f)), "float16 of %g", f)
		require.Equal(t, uint16(quant.ToBFloat16(f)), uint16(BF16From(f)), "bfloat16 of %g", f)
		require.Equal(t, math.Float32bits(quant.BFloat16(BF16From(f)).Float32()), math.Float32bits(BF16From(f).Float32()))
	}
}
