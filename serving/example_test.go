package serving_test

import (
	"context"
	"fmt"
	"log"

	"github.com/quiverml/quiver/serving"
)

func ExampleNewBatcher() {
	m, err := serving.Load("../testdata/models/mlp.onnx", serving.Options{WarmUp: true})
	if err != nil {
		log.Fatal(err)
	}
	b, err := serving.NewBatcher(m, serving.BatcherOptions{MaxBatchSize: 64})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close() // drains queued requests, then closes the model

	out, err := b.Predict(context.Background(), map[string]serving.Tensor{
		"x": serving.NewTensor([]int64{2, 16}, make([]float32, 32)),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(out["y"].Tensor.Shape)

	_, err = b.Predict(context.Background(), map[string]serving.Tensor{
		"x": serving.NewTensor([]int64{1, 15}, make([]float32, 15)),
	})
	fmt.Println(err)
	// Output:
	// [2 4]
	// serving: input "x": got shape [1 15], want shape [-1 16]
}

func ExampleONNXModel_Info() {
	m, err := serving.Load("../testdata/models/state.onnx", serving.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	info := m.Info()
	for _, in := range info.Inputs {
		fmt.Println(in)
	}
	fmt.Println(info.Batchable, info.BatchReason)
	// Output:
	// x float32[-1 4]
	// h float32[1 -1 4]
	// scale float32[]
	// false input "h" has a fixed first axis of size 1
}
