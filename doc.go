// Package quiver is an embeddable library for in-process ML serving.
//
// Import the package you need; each stands alone:
//
//   - serving: the model contract (Model, Info, tensors, validation) and the
//     dynamic Batcher; needs no cgo
//   - serving/onnx: the ONNX Runtime engine (CPU, CUDA, TensorRT); the one
//     package that needs cgo
//   - serving/gorgonia: the pure-Go engine: tabular and small vision ONNX
//     models on gorgonia graphs, which serving/gorgonia/train trains while
//     they serve and exports back to ONNX
//   - serving/oip: Open Inference Protocol (KServe V2) endpoints, REST and
//     gRPC, over any models or a registry's aliases
//   - features: an in-memory online feature store with an optional Redis tier
//   - vector: an HNSW vector index for retrieval-augmented generation
//   - registry: versioned models with hot reload and rollback, in a folder or
//     an S3-compatible bucket (registry/s3)
//   - abtest: A/B, canary, shadow and bandit routing between model variants,
//     shared across replicas through Redis (abtest/redisstate)
//   - online: the loop that keeps a model learning from outcomes and offers
//     its candidates as canaries
//   - quant: quantization helpers for tensors, embeddings and ONNX weights
//
// The packages meet through small interfaces (serving.Model above all), so a
// service can swap any part for its own implementation. A Batcher in front
// of a registry alias (registry.Handle, a serving.Pinner) follows every
// version swap; every request's context reaches the run that serves it,
// merged batches included (serving.RequestContexts), so served-version
// hooks and OpenTelemetry spans work through batching.
//
// # Metrics
//
// Every part keeps its counters in a Stats snapshot and offers a
// prometheus.Collector through one method, Collector(constLabels); Quiver
// registers nothing itself. Each collector's series carry constLabels plus
// a default label naming the instance (a key of constLabels overrides it):
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(
//		batcher.Collector(nil),                  // model="<model name>"
//		store.Collector(nil),                    // store=features.Options.Name
//		index.Collector(nil),                    // index=vector.Options.Name
//		server.Collector(nil),                   // registry=registry.ServerOptions.Name
//		router.Collector(nil),                   // experiment="<experiment name>"
//		router.Tracker().Collector(nil),         // experiment="<experiment name>"
//		other.Collector(prometheus.Labels{"replica": "b"}),
//	)
//
// Any number of instances share one registry as long as their labels
// differ; a second collector with identical labels is refused by the
// registry as a duplicate, and all instances of a type registered together
// must use the same label names. Metric names are quiver_<package>_<what>
// with the unit in the name (_seconds, _bytes, _total), and latencies are
// histograms in seconds.
//
// # Logging
//
// Every Options or Config with a Logger field treats nil as slog.Default(),
// so a version that fails to load or a guardrail that stops a canary is
// never silent; pass slog.New(slog.DiscardHandler) to silence a part. All
// packages log the same kinds of event at the same level:
//
//   - Error: work lost or a change refused (a version that failed to load,
//     stream ingestion that stopped, a guardrail that could not stop a variant)
//   - Warn: degraded but still serving (a guardrail stopped a variant, a
//     registry read failed and what is loaded keeps serving, rejected rows,
//     a Redis read that fell back to the local rows)
//   - Info: changes of state (a version loaded, an alias swapped, a version
//     unloaded, a guardrail started)
//   - Debug: routine upkeep and per-request detail (sweeps, compactions,
//     shadow failures)
//
// Messages start with the package's name ("registry: swapped"), attributes
// use the keys model, version, alias, store, view, index, experiment,
// variant and error, and a named instance (Options.Name) adds its name to
// every message under its label's key (store, index, registry).
package quiver
