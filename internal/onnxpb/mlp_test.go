package onnxpb_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/quiverml/quiver/internal/onnxpb"
	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/onnx"
	"github.com/stretchr/testify/require"
)

func TestMLPIsDeterministicAndRuns(t *testing.T) {
	spec := onnxpb.MLPSpec{Sizes: []int{8, 16, 3}, Seed: 42, Metadata: map[string]string{"b": "2", "a": "1"}, Version: 7}
	a, err := onnxpb.MLP(spec)
	require.NoError(t, err)
	b, err := onnxpb.MLP(spec)
	require.NoError(t, err)
	require.True(t, bytes.Equal(a, b), "same spec, same bytes")
	other, err := onnxpb.MLP(onnxpb.MLPSpec{Sizes: []int{8, 16, 3}, Seed: 43})
	require.NoError(t, err)
	require.False(t, bytes.Equal(a, other), "another seed, other weights")

	m, err := onnx.LoadBytes(context.Background(), a, onnx.Options{})
	require.NoError(t, err)
	defer m.Close()
	info := m.Info()
	require.Equal(t, []int64{-1, 8}, info.Inputs[0].Shape)
	require.Equal(t, []int64{-1, 3}, info.Outputs[0].Shape)
	require.Equal(t, int64(7), info.Version)
	require.Equal(t, map[string]string{"a": "1", "b": "2"}, info.Custom)
	require.True(t, info.Batchable)
	out, err := m.Predict(context.Background(), map[string]serving.Tensor{"x": serving.NewTensor([]int64{2, 8}, make([]float32, 16))})
	require.NoError(t, err)
	require.Equal(t, []int64{2, 3}, out["y"].Tensor.Shape)
}

func TestMLPRejectsBadSpecs(t *testing.T) {
	_, err := onnxpb.MLP(onnxpb.MLPSpec{Sizes: []int{4}})
	require.ErrorContains(t, err, "at least 2 sizes")
	_, err = onnxpb.MLP(onnxpb.MLPSpec{Sizes: []int{4, 0}})
	require.ErrorContains(t, err, "positive")
}
