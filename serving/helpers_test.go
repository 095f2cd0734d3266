package serving_test

import (
	"context"
	"testing"

	. "github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/onnx"
	"github.com/quiverml/quiver/serving/servingtest"
	"github.com/stretchr/testify/require"
)

// testModel returns the path of a committed test model.
func testModel(name string) string { return servingtest.ModelPath(name) }

// thirdPartyModel returns a model shipped in onnxruntime_go's test data,
// a real model exported by other tools (e.g. scikit-learn).
func thirdPartyModel(t *testing.T, name string) string {
	t.Helper()
	return servingtest.ThirdPartyModel(t, name)
}

func load(t testing.TB, name string, opts onnx.Options) *onnx.Model {
	t.Helper()
	m, err := onnx.Load(context.Background(), testModel(name), opts)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

func f32(shape []int64, vals ...float32) Tensor { return NewTensor(shape, vals) }

func seq(n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i%17-8) * scale
	}
	return v
}
