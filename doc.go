// Package quiver is an embeddable library for in-process ML serving.
//
// Import the package you need; each stands alone:
//
//   - serving: ONNX models on ONNX Runtime (CPU, CUDA, TensorRT) with dynamic batching
//   - features: an in-memory online feature store with an optional Redis tier
//   - vector: an HNSW vector index for retrieval-augmented generation
//   - registry: versioned models with hot reload and rollback
//   - abtest: A/B, canary, shadow and bandit routing between model variants
//   - quant: quantization helpers for tensors, embeddings and ONNX weights
//
// The packages meet through small interfaces (serving.Model above all), so a
// service can swap any part for its own implementation.
package quiver
