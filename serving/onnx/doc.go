// Package onnx is the ONNX Runtime engine of serving: Load and LoadBytes
// open an ONNX model on ONNX Runtime (through onnxruntime_go, so it needs
// cgo) and return a *Model, a serving.Model safe for concurrent use.
//
//	m, err := onnx.Load(ctx, "mlp.onnx", onnx.Options{WarmUp: true})
//	if err != nil { ... }
//	defer m.Close()
//	b, err := serving.NewBatcher(m, serving.BatcherOptions{})
//
// Every element type ONNX Runtime has works, models with several inputs
// and outputs, dynamic axes, sequence and map outputs; a model whose first
// axis is not a batch axis runs unbatched (Info.Batchable, BatchReason).
// Execution providers (CPU, CUDA, TensorRT) are options of a model; a
// runtime without the one asked for gives ErrProviderUnavailable, or a
// logged fallback to the CPU when AllowCPUFallback is set.
//
// The ONNX Runtime shared library is found through Options.LibraryPath,
// the ONNXRUNTIME_LIB environment variable, or the usual system paths; the
// first model loaded fixes it for the process. Opener adapts Load to
// callers that open models by path, such as registry.FileLoader.
package onnx
