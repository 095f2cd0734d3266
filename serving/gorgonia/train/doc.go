// Package train trains small models in pure Go with gorgonia and serves
// them while they learn: a Trainer is a serving.Model whose predictions
// follow every training step, and which exports itself to an ONNX file that
// ONNX Runtime (serving/onnx) serves with the same outputs.
//
//	tr, err := train.New(train.MLP{Sizes: []int{16, 32, 1}}, train.Options{LearningRate: 0.01})
//	if err != nil { ... }
//	defer tr.Close()
//	st, err := tr.Update(ctx, map[string]serving.Tensor{"x": x}, labels) // one mini-batch
//	out, err := tr.Predict(ctx, map[string]serving.Tensor{"x": row})    // concurrently
//	err = tr.ExportFile("ctr.onnx")                                     // for serving/onnx or a registry
//
// # Models
//
// Three specs, all float32, with a first axis "batch" on every input and
// output:
//
//   - LogisticRegression: input "x" [batch, n], output "y" [batch, 1], the
//     probability of the positive class.
//   - MLP: fully connected layers of the given sizes with ReLU or Tanh
//     between them; output "y" is a probability (Binary), a probability per
//     class (Multiclass, softmax) or the values themselves (Regression).
//   - TwoTower: inputs "user" and "item", each through its own tower of
//     layers to an embedding of the same size; output "y" [batch, 1] is the
//     sigmoid of the embeddings' dot product, and the embeddings are the
//     outputs "user_embedding" and "item_embedding" (for a vector index).
//
// A fourth spec, ONNXModel, takes its architecture and initial weights from
// an ONNX model, built into the training graph by serving/gorgonia: it
// fine-tunes a file Export wrote (or one made elsewhere from the operators
// that engine differentiates), and Export writes it back with the trained
// weights. Its inputs may be float32, int64 or int32 (ids for an embedding
// Gather).
//
// Weights start from a normal distribution scaled by fan-in (He for ReLU
// layers, 1/fan-in otherwise) drawn from Options.Seed, biases from zero: the
// same spec, options and seed always give the same model.
//
// # Training
//
// Update takes one mini-batch and takes one step. The loss and its
// gradient come from a gorgonia graph (symbolic differentiation with
// gorgonia.Grad, run on a TapeMachine): binary cross-entropy computed from
// the logit in the form that never overflows, softmax cross-entropy with
// int64 class targets (a log-softmax that subtracts each row's maximum), or
// mean squared error. The loss is the mean over the batch's rows, so the
// learning rate does not depend on the batch size. Batches of any size up
// to Options.MaxBatchRows run on graphs built for power-of-two capacities,
// the padding rows weighted zero.
//
// The gradient then gets the L2 term (L2·W for weight matrices, not
// biases), element clipping (ClipValue) and norm clipping (ClipNorm), and a
// solver steps: Adam (default), SGD or Momentum. The solvers are this
// package's, not gorgonia's, so that their state can be saved and a step
// can be refused before it is applied; they take the steps gorgonia's
// VanillaSolver, Momentum and AdamSolver take (a test runs both side by
// side), except that L2 with Momentum regularises the weights where
// gorgonia's Momentum uses its velocity. A step whose loss, gradient or
// result is not finite is refused with ErrDiverged; bad inputs and targets
// are refused with a *serving.InputError or a *TargetError; a cancelled
// context is noticed before the step is applied. In each case the trainer
// keeps the state it had.
//
// # Serving while training
//
// Each step publishes an immutable snapshot of the parameters with one
// atomic pointer store. Predict reads the latest snapshot and computes the
// forward pass in plain Go (AVX2 dot products where the CPU has them),
// without locks and without the graph (an ONNXModel runs a pooled
// forward-only gorgonia graph with the snapshot's tensors bound to it), so
// predictions run concurrently with Update and never see half-updated
// weights: every prediction is the prediction of one completed step's
// model. Updates run one at a time.
// Info reports the signature (Batchable, so a serving.Batcher may merge
// requests) and, in Custom, the training progress of the served snapshot
// (MetaSteps, MetaRows, MetaLoss) beside Options.Metadata.
//
// # Export
//
// Export and ExportFile write the served snapshot as an ONNX model (IR
// version 8, opset 13; Gemm, Relu, Tanh, Sigmoid, Softmax, and Mul, MatMul
// and Constant for a two-tower model's dot product)
// whose inputs and outputs are Info's, with producer "quiver", the model
// version of Options.Version and Info.Custom as metadata. ONNX Runtime
// serves it with outputs equal to Predict's within 1e-5: a logistic
// regression trained on separable data to held-out accuracy 0.99, and an
// MLP trained on two concentric circles to a binary cross-entropy below
// 0.05, keep those figures when ONNX Runtime serves their export (cgo
// tests).
//
// # Saving and resuming
//
// Save and SaveFile write the whole training state (spec, options,
// parameters, solver state, step count) in a versioned, checksummed file;
// Load and LoadFile resume from it, and the steps that follow equal those
// the saved trainer would have taken. A damaged file gives ErrFormat.
//
// # Observability
//
// Stats returns a snapshot of the counters and latencies; Collector exports
// them to Prometheus as quiver_train_* series labelled with the model's
// name. Refused steps are logged at warning level to Options.Logger.
package train
