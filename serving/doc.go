// Package serving loads ONNX models on ONNX Runtime and serves them with
// dynamic batching.
//
// Load or LoadBytes returns a Model backed by an ONNX Runtime session;
// NewBatcher puts a dynamic batcher in front of any Model, merging
// concurrent requests along the batch axis into one run:
//
//	m, err := serving.Load("mlp.onnx", serving.Options{})
//	if err != nil { ... }
//	b, err := serving.NewBatcher(m, serving.BatcherOptions{MaxBatchSize: 64})
//	if err != nil { ... }
//	defer b.Close() // closes m too
//	out, err := b.Predict(ctx, map[string]serving.Tensor{
//		"x": serving.NewTensor([]int64{1, 16}, features),
//	})
//
// The ONNX Runtime shared library is found through Options.LibraryPath, the
// ONNXRUNTIME_LIB environment variable, or the usual system paths.
package serving
