package train_test

import (
	"bytes"
	"context"
	"fmt"

	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/gorgonia/train"
)

// Train a logistic regression on a stream of mini-batches while serving
// it, then export it for ONNX Runtime.
func Example() {
	ctx := context.Background()
	tr, err := train.New(train.LogisticRegression{Features: 2}, train.Options{LearningRate: 0.1, Seed: 1})
	if err != nil {
		panic(err)
	}
	defer tr.Close()

	// The label is 1 when the first feature exceeds the second.
	x := []float32{2, 1, 0, 1, 3, -1, -2, 0, 1, 2, 0.5, -0.5, -1, -3, 2, 2.5}
	y := []float32{1, 0, 1, 0, 0, 1, 1, 0}
	in := map[string]serving.Tensor{"x": serving.NewTensor([]int64{8, 2}, x)}
	var st train.UpdateStats
	for range 200 {
		if st, err = tr.Update(ctx, in, serving.NewTensor([]int64{8}, y)); err != nil {
			panic(err)
		}
	}

	out, err := tr.Predict(ctx, map[string]serving.Tensor{"x": serving.NewTensor([]int64{2, 2}, []float32{3, 0, 0, 3})})
	if err != nil {
		panic(err)
	}
	p, _ := out["y"].Tensor.Float32s()
	fmt.Printf("step %d, loss below 0.1: %v\n", st.Step, st.Loss < 0.1)
	fmt.Printf("P(3 > 0) > 0.9: %v, P(0 > 3) < 0.1: %v\n", p[0] > 0.9, p[1] < 0.1)

	var onnxFile bytes.Buffer
	if err := tr.Export(&onnxFile); err != nil {
		panic(err)
	}
	fmt.Println("exported:", onnxFile.Len() > 0, tr.Info().Custom[train.MetaSteps], "steps")
	// Output:
	// step 200, loss below 0.1: true
	// P(3 > 0) > 0.9: true, P(0 > 3) < 0.1: true
	// exported: true 200 steps
}
