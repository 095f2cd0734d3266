//go:build cgo

package gorgonia

import (
	"context"
	"fmt"
	"testing"
	"time"

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

// BenchmarkEnginesAlternating is BenchmarkEngines with both engines in
// one loop: every iteration runs one Predict on this engine, then one on
// ONNX Runtime, timing each, so that load from other processes falls on
// both alike. It reports each engine's rows/s and their ratio
// (gorgonia/ort: above 1 means this engine is faster); allocs/op counts
// both calls.
func BenchmarkEnginesAlternating(b *testing.B) {
	ctx := context.Background()
	gm, err := Load(ctx, testModel("bench_mlp"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer gm.Close()
	om, err := onnx.Load(ctx, testModel("bench_mlp"), onnx.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer om.Close()
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			in := map[string]serving.Tensor{"x": serving.NewTensor([]int64{int64(batch), 64}, randomFloats(7, batch*64))}
			for _, m := range []serving.Model{gm, om} { // compile and warm outside the timing
				if _, err := m.Predict(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
			var tg, to time.Duration
			b.ReportAllocs()
			for b.Loop() {
				t0 := time.Now()
				if _, err := gm.Predict(ctx, in); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if _, err := om.Predict(ctx, in); err != nil {
					b.Fatal(err)
				}
				tg, to = tg+t1.Sub(t0), to+time.Since(t1)
			}
			rows := float64(b.N * batch)
			b.ReportMetric(rows/tg.Seconds(), "gorgonia-rows/s")
			b.ReportMetric(rows/to.Seconds(), "ort-rows/s")
			b.ReportMetric(to.Seconds()/tg.Seconds(), "gorgonia/ort")
		})
	}
}
