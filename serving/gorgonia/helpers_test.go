package gorgonia

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/servingtest"
	"github.com/stretchr/testify/require"
)

func testModel(name string) string { return servingtest.ModelPath(name) }

func load(t testing.TB, name string, opts Options) *Model {
	t.Helper()
	m, err := Load(context.Background(), testModel(name), opts)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

func f32(shape []int64, vals ...float32) serving.Tensor { return serving.NewTensor(shape, vals) }

func randomFloats(seed uint64, n int) []float32 {
	rng := rand.New(rand.NewPCG(seed, uint64(n)))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

func predict(t testing.TB, m serving.Model, in map[string]serving.Tensor) map[string]serving.Value {
	t.Helper()
	out, err := m.Predict(context.Background(), in)
	require.NoError(t, err)
	return out
}
