// Package serving is the contract between models and the code that serves
// them: the Model interface, Info, tensors and values, input validation,
// errors, and the dynamic Batcher with its stats and Prometheus collector.
// It knows no engine and needs no cgo.
//
// Engines live beside it and return a Model: serving/onnx runs ONNX files
// on ONNX Runtime (cgo; CPU, CUDA, TensorRT). A registry alias
// (registry.Handle) is a Model too. Like database/sql, serving discovers
// what an engine offers beyond Model through optional interfaces:
// InputBorrower (the Batcher may reuse its merged input buffers) and Pinner
// (the model behind can change; the Batcher pins one per request and
// follows every change of Info).
//
// NewBatcher puts a dynamic batcher in front of any Model, merging
// concurrent requests along the batch axis into one run:
//
//	m, err := onnx.Load(ctx, "mlp.onnx", onnx.Options{})
//	if err != nil { ... }
//	b, err := serving.NewBatcher(m, serving.BatcherOptions{MaxBatchSize: 64})
//	if err != nil { ... }
//	defer b.Close() // closes m too
//	out, err := b.Predict(ctx, map[string]serving.Tensor{
//		"x": serving.NewTensor([]int64{1, 16}, features),
//	})
//
// The Batcher sizes batches from measurements by default
// (BatcherOptions.Adaptive): for each shape group it measures the rows per
// second its own batches achieve under each size cap and caps the group's
// batches at the size that serves the most, down to running requests one
// by one when merging loses (a model whose merged working set outgrows the
// caches), up to MaxBatchSize when merging wins.
//
// Every request's context reaches what runs for it: a merged batch runs
// under a context that carries each request's context (RequestContexts),
// so per-request hooks such as registry.WithServedHook fire once per
// request, and a request traced with OpenTelemetry gets a span (queue wait
// and run) linked from the span of the batch that ran it.
//
// Batcher.Stats returns a snapshot of the counters; Batcher.Collector
// exports them to Prometheus: quiver_serving_{requests,rows,batches,
// padding_rows,errors}_total, quiver_serving_batch_size_rows, the
// histograms quiver_serving_{queue_wait,run,request}_seconds, the gauges
// quiver_serving_queue_length and quiver_serving_batches_in_flight, and per
// shape group the gauges quiver_serving_adaptive_batch_size{shape} and
// quiver_serving_adaptive_rows_per_second{shape,size}, every series
// labelled model="<name>" plus the caller's constant labels, so any number
// of batchers share one registry. Logging follows the rule of every
// Quiver package: a nil Logger in an options struct means slog.Default().
package serving
