//go:build cgo

package gorgonia

import (
	"context"
	"fmt"
	"testing"

	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/onnx"
)

// BenchmarkEngines runs the tabular MLP (testdata/models/bench_mlp.onnx:
// 64 -> 256 -> 256 -> 1 with ReLU) through Predict on this engine and on
// ONNX Runtime (one intra-op thread), one goroutine, at batch 1 and 64,
// reporting rows/s and allocations.
func BenchmarkEngines(b *testing.B) {
	ctx := context.Background()
	engines := []struct {
		name string
		open func() (serving.Model, error)
	}{
		{"gorgonia", func() (serving.Model, error) { return Load(ctx, testModel("bench_mlp"), Options{}) }},
		{"onnxruntime", func() (serving.Model, error) { return onnx.Load(ctx, testModel("bench_mlp"), onnx.Options{}) }},
	}
	for _, e := range engines {
		for _, batch := range []int{1, 64} {
			b.Run(fmt.Sprintf("engine=%s/batch=%d", e.name, batch), func(b *testing.B) {
				m, err := e.open()
				if err != nil {
					b.Fatal(err)
				}
				defer m.Close()
				in := map[string]serving.Tensor{"x": serving.NewTensor([]int64{int64(batch), 64}, randomFloats(7, batch*64))}
				if _, err := m.Predict(ctx, in); err != nil { // compile outside the timing
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if _, err := m.Predict(ctx, in); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
			})
		}
	}
}
