package onnx_test

import (
	"context"
	"fmt"
	"log"

	"github.com/quiverml/quiver/serving/onnx"
)

func ExampleModel_Info() {
	m, err := onnx.Load(context.Background(), "../../testdata/models/state.onnx", onnx.Options{})
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
