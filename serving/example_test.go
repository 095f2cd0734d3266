package serving_test

import (
	"context"
	"fmt"
	"log"

	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/onnx"
)

func ExampleNewBatcher() {
	m, err := onnx.Load(context.Background(), "../testdata/models/mlp.onnx", onnx.Options{WarmUp: true})
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
