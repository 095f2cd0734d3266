package gorgonia

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/quiverml/quiver/serving"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// BenchmarkExecutors runs one graph of the tabular MLP (bench_mlp.onnx),
// built for batch 1 and 64, on this package's machine and on gorgonia's
// TapeMachine: the same ops, two ways to run them. One goroutine.
func BenchmarkExecutors(b *testing.B) {
	data, err := os.ReadFile(testModel("bench_mlp"))
	if err != nil {
		b.Fatal(err)
	}
	g, err := Parse(data)
	if err != nil {
		b.Fatal(err)
	}
	info := g.Info()
	for _, batch := range []int{1, 64} {
		x := randomFloats(7, batch*64)
		b.Run(fmt.Sprintf("executor=machine/batch=%d", batch), func(b *testing.B) {
			mc, err := g.compile("k", [][]int{{batch, 64}}, 1<<30)
			if err != nil {
				b.Fatal(err)
			}
			in := map[string]serving.Tensor{"x": serving.NewTensor([]int64{int64(batch), 64}, x)}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := mc.run(context.Background(), &info, in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
		})
		b.Run(fmt.Sprintf("executor=tapemachine/batch=%d", batch), func(b *testing.B) {
			eg := G.NewGraph()
			inputs, err := g.NewInputs(eg, map[string][]int{"x": {batch, 64}})
			if err != nil {
				b.Fatal(err)
			}
			built, err := g.Build(eg, inputs)
			if err != nil {
				b.Fatal(err)
			}
			vm := G.NewTapeMachine(eg)
			defer vm.Close()
			xt := tensor.New(tensor.WithShape(batch, 64), tensor.WithBacking(x))
			b.ReportAllocs()
			for b.Loop() {
				if err := G.Let(inputs["x"], xt); err != nil {
					b.Fatal(err)
				}
				if err := vm.RunAll(); err != nil {
					b.Fatal(err)
				}
				_ = built.Outputs["y"].Value()
				vm.Reset()
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
