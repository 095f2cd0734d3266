package train

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/quiverml/quiver/serving"
)

// TestPredictMatchesGraph checks that the plain-Go forward pass Predict
// serves equals the forward pass of the gorgonia training graph (float32,
// the same parameters) within 1e-6, for every kind of model, on trained
// (not only initial) parameters.
func TestPredictMatchesGraph(t *testing.T) {
	for _, tc := range gradCases() {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := New(tc.spec, Options{Seed: 4, LearningRate: 0.05})
			require.NoError(t, err)
			defer tr.Close()
			rng := rand.New(rand.NewPCG(5, 6))
			ctx := context.Background()
			for range 5 { // move the parameters away from their initial values
				in, y := randomTensors(tr.a, 16, rng)
				_, err := tr.Update(ctx, in, y)
				require.NoError(t, err)
			}
			gr, err := buildGraph(tr.a, tr.ptens, tc.cap, tensor.Float32, true)
			require.NoError(t, err)
			defer gr.close()
			in, _ := randomTensors(tr.a, tc.cap, rng)
			for ti, tw := range tr.a.towers {
				copy(gr.inputs[ti].Data().([]float32), in[tw.input].Data.([]float32))
			}
			require.NoError(t, gr.run())
			want := append([]float32(nil), gr.out.Data().([]float32)...)
			gr.reset()

			out, err := tr.Predict(ctx, in)
			require.NoError(t, err)
			got, err := out["y"].Tensor.Float32s()
			require.NoError(t, err)
			require.Len(t, got, len(want))
			for i := range want {
				require.InDelta(t, want[i], got[i], 1e-6, "element %d", i)
			}
		})
	}
}

// randomTensors draws a batch of rows for a: normal inputs and valid
// targets.
func randomTensors(a *arch, rows int, rng *rand.Rand) (map[string]serving.Tensor, serving.Tensor) {
	in := map[string]serving.Tensor{}
	for _, tw := range a.towers {
		x := make([]float32, rows*tw.sizes[0])
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		in[tw.input] = serving.NewTensor([]int64{int64(rows), int64(tw.sizes[0])}, x)
	}
	k := a.outputs()
	switch {
	case a.output == Multiclass:
		y := make([]int64, rows)
		for i := range y {
			y[i] = int64(rng.IntN(k))
		}
		return in, serving.NewTensor([]int64{int64(rows)}, y)
	case a.output == Regression:
		y := make([]float32, rows*k)
		for i := range y {
			y[i] = float32(rng.NormFloat64())
		}
		return in, serving.NewTensor([]int64{int64(rows), int64(k)}, y)
	}
	y := make([]float32, rows)
	for i := range y {
		y[i] = float32(math.Round(rng.Float64()))
	}
	return in, serving.NewTensor([]int64{int64(rows)}, y)
}
