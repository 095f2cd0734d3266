// Package gorgonia is a pure-Go engine of serving: it runs ONNX models of
// tabular and small vision networks without cgo, on gorgonia expression
// graphs (gorgonia.org/gorgonia), and lets a trainer build the same graphs
// for gradients. Load and LoadBytes return a *Model, a serving.Model safe
// for concurrent use that works behind serving.Batcher like any other.
//
//	m, err := gorgonia.Load(ctx, "mlp.onnx", gorgonia.Options{})
//	if err != nil { ... } // errors.Is(err, gorgonia.ErrUnsupported): an operator it does not run
//	defer m.Close()
//	out, err := m.Predict(ctx, map[string]serving.Tensor{
//		"x": serving.NewTensor([]int64{1, 16}, features),
//	})
//
// # Operators
//
// The default ONNX domain at opsets 7 to 23, with ONNX semantics and these
// attributes (float32 and float64 unless said; "grad" marks the operators
// gorgonia.Grad differentiates through, see Build):
//
//	Gemm                alpha, beta, transA, transB; C broadcast          grad
//	MatMul              numpy semantics: vectors, stacks, broadcast       grad (stacks by a matrix)
//	Add Sub Mul Div     numpy (multidirectional) broadcasting             grad
//	Relu Sigmoid Tanh   -                                                 grad
//	LeakyRelu           alpha                                             grad
//	Softmax LogSoftmax  axis; opset 13 semantics, and the older ones      grad
//	                    (softmax over the axes from axis on)
//	Reshape             0 and -1, allowzero; target an initializer or     grad (any type)
//	                    a Constant
//	Flatten             axis                                              grad (any type)
//	Concat              axis                                              grad (any type)
//	Transpose           perm                                              grad (any type)
//	Identity, Dropout   Dropout at inference: ratio, seed ignored;        grad
//	                    no mask output, training_mode false
//	Gather              any axis, int32/int64 indices, negative indices   grad (data)
//	BatchNormalization  epsilon (momentum ignored); inference mode only
//	Conv                1-D and 2-D: pads, strides, dilations, group,
//	                    auto_pad (NOTSET, VALID, SAME_UPPER, SAME_LOWER)
//	MaxPool             1-D and 2-D: pads, strides, dilations, ceil_mode,
//	                    auto_pad; no Indices output
//	AveragePool         1-D and 2-D: pads, strides, ceil_mode,
//	                    count_include_pad, auto_pad; dilations 1
//	GlobalAveragePool   any number of spatial axes
//	Constant            value, value_float(s), value_int(s)
//
// Anything else, an attribute value outside these, or an attribute the
// engine does not know, is refused at load with an *UnsupportedError
// naming the node, the operator and what is supported:
//
//	serving/gorgonia: model "cnn.onnx": node "pool1" (AveragePool): attribute dilations=[2 2] not supported; supported: 1
//
// It matches ErrUnsupported and serving.ErrModel. Inputs and outputs are
// tensors of float32, float64, int32 or int64; initializers may also be
// bool (read as flags). Tensors stored outside the model file, sparse
// initializers and other operator domains are refused. Every output
// matches ONNX Runtime within 1e-5 on the repository's test models (a
// cgo test compares them).
//
// # How it runs
//
// gorgonia graphs have static shapes, so a graph is built (compiled) per
// set of input shapes and kept: Options.MaxShapes shapes, least recently
// used dropped first, each with up to Options.MaxIdle idle machines for
// concurrent requests. A machine is a gorgonia graph of this package's
// gorgonia Ops with a buffer per node, run by a loop that calls each op's
// UsePreallocDo in order: a run allocates only its outputs. The float32
// matrix products (Gemm, MatMul, Conv as im2col) run on AVX2+FMA kernels
// where the CPU has them (the purego build tag turns them off), the rest
// on gonum's pure-Go BLAS. Behind a Batcher, requests come in a few batch
// sizes, so a few shapes cover the traffic; Stats and Collector report
// compiles and evictions. Options.MaxMachineBytes bounds one machine's
// buffers: larger requests fail with serving.ErrTooLarge.
//
// Input shapes that a model's graph cannot take (a kernel larger than the
// image) fail with a *serving.InputError of kind serving.ErrShape; an
// index out of range in Gather with a *serving.RunError matching
// serving.ErrInput. A cancelled context stops a run between operators.
//
// A model is batchable (Info.Batchable) when every input and output is a
// tensor with a dynamic first axis and every named first axis carries the
// same name; when names differ it runs unbatched, since this engine does
// not probe. Options.Batching overrides the names (BatchAlways,
// BatchNever); Info.BatchReason says what decided.
//
// # Building graphs for training
//
// Parse checks an ONNX model and returns a *Graph; Graph.NewInputs makes
// input nodes of concrete shapes, and Graph.Build adds the model to a
// gorgonia.ExprGraph and returns a *Built: the output nodes, and Params,
// the nodes of the float initializers in file order (Graph.ParamNames),
// bound to the Graph's tensors so that a solver stepping them updates the
// Graph in place:
//
//	g, err := gorgonia.Parse(data)
//	eg := G.NewGraph()
//	in, err := g.NewInputs(eg, map[string][]int{"x": {batch, 16}})
//	built, err := g.Build(eg, in)
//	loss := ... built.Outputs["y"] ...
//	_, err = G.Grad(loss, built.Params...)
//	vm := G.NewTapeMachine(eg, G.BindDualValues(built.Params...))
//
// The graph runs on gorgonia's TapeMachine; gorgonia.Grad differentiates
// the operators marked "grad" above (BatchNormalization, Conv and the
// pools run forward only). Model.Graph returns the Graph a model serves.
//
// # When to pick it over serving/onnx
//
// Pick this engine for builds without cgo (CGO_ENABLED=0, static
// binaries, platforms without an ONNX Runtime build), for models that a
// gorgonia trainer keeps learning, and for small tabular models. Pick
// serving/onnx for larger models and convolution nets, for operators
// beyond the table, for float16 and string tensors, and for GPUs. On the
// tabular MLP of the benchmarks (64-256-256-1, one goroutine, ONNX Runtime
// on one thread), BenchmarkEnginesAlternating, which times both engines in
// one loop, measured this engine 1.7-1.9x ahead of ONNX Runtime's Predict
// at batch 1 (little per-call overhead: 6 allocations to its 19) and 1.6x
// behind it at batch 64 (0.61-0.62x its rows/s: ONNX Runtime's matrix
// kernels are faster), in three rounds on a shared 2-core VM;
// BenchmarkEngines runs each engine on its own. BenchmarkExecutors
// compares the executor with gorgonia's TapeMachine on the same graph.
package gorgonia
