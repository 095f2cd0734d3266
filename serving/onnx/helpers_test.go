package onnx

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/servingtest"
	"github.com/stretchr/testify/require"
)

func testModel(name string) string { return servingtest.ModelPath(name) }

func thirdPartyModel(t *testing.T, name string) string {
	t.Helper()
	return servingtest.ThirdPartyModel(t, name)
}

func load(t testing.TB, name string, opts Options) *Model {
	t.Helper()
	m, err := Load(context.Background(), testModel(name), opts)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

func f32(shape []int64, vals ...float32) serving.Tensor { return serving.NewTensor(shape, vals) }

func seq(n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i%17-8) * scale
	}
	return v
}

// benchModel is the tabular MLP 64 -> 256 -> 256 -> 1 with ReLU.
const benchModel = "bench_mlp"

func randomFloats(n int) []float32 {
	rng := rand.New(rand.NewPCG(7, uint64(n)))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}
