package gorgonia_test

import (
	"context"
	"fmt"
	"os"

	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/gorgonia"
	"github.com/quiverml/quiver/serving/servingtest"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func ExampleLoad() {
	ctx := context.Background()
	m, err := gorgonia.Load(ctx, servingtest.ModelPath("mlp"), gorgonia.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	b, err := serving.NewBatcher(m, serving.BatcherOptions{KeepModelOpen: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	out, err := b.Predict(ctx, map[string]serving.Tensor{
		"x": serving.NewTensor([]int64{1, 16}, make([]float32, 16)),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Info().Inputs[0], "->", out["y"].Tensor.Shape, m.Info().BatchReason)
	// Output: x float32[-1 16] -> [1 4] every named first axis is "batch"
}

func ExampleGraph_Build() {
	data, err := os.ReadFile(servingtest.ModelPath("mlp"))
	if err != nil {
		fmt.Println(err)
		return
	}
	g, err := gorgonia.Parse(data)
	if err != nil {
		fmt.Println(err)
		return
	}
	eg := G.NewGraph()
	in, err := g.NewInputs(eg, map[string][]int{"x": {8, 16}})
	if err != nil {
		fmt.Println(err)
		return
	}
	built, err := g.Build(eg, in)
	if err != nil {
		fmt.Println(err)
		return
	}
	// A loss, its gradients with respect to the model's weights, and a run.
	loss := G.Must(G.Mean(G.Must(G.Square(built.Outputs["y"]))))
	if _, err := G.Grad(loss, built.Params...); err != nil {
		fmt.Println(err)
		return
	}
	vm := G.NewTapeMachine(eg, G.BindDualValues(built.Params...))
	defer vm.Close()
	x := make([]float32, 8*16)
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	if err := G.Let(in["x"], tensor.New(tensor.WithShape(8, 16), tensor.WithBacking(x))); err != nil {
		fmt.Println(err)
		return
	}
	if err := vm.RunAll(); err != nil {
		fmt.Println(err)
		return
	}
	grad, _ := built.Params[0].Grad()
	fmt.Println(g.ParamNames(), built.Outputs["y"].Shape(), grad.Shape())
	// Output: [w0 b0 w1 b1] (8, 4) (16, 32)
}
