package serving

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Model is anything that turns named input tensors into named output values.
// Engines implement it (serving/onnx on ONNX Runtime); a Batcher is a Model
// that merges concurrent requests in front of another Model; a registry
// alias is a Model that forwards to the version it serves. Implementations
// are safe for concurrent use.
//
// A Model may offer more through optional interfaces that callers discover
// with a type assertion, as io.WriterTo is discovered by io.Copy:
// InputBorrower and Pinner are the ones the Batcher looks for.
type Model interface {
	// Info describes the model's inputs, outputs and metadata.
	Info() Info
	// Predict runs the model. A cancelled or expired ctx ends any wait and
	// returns the context's error wrapped.
	Predict(ctx context.Context, inputs map[string]Tensor) (map[string]Value, error)
	// Close waits for in-flight requests and frees native memory. Calls after
	// Close return ErrClosed.
	Close() error
}

// Sentinel errors, checked with errors.Is.
var (
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("serving: model is closed")
	// ErrOverloaded is returned at once when a batcher's queue is full.
	ErrOverloaded = errors.New("serving: overloaded, queue is full")
	// ErrShape reports an input whose rank or a fixed dimension is wrong.
	ErrShape = errors.New("serving: wrong shape")
	// ErrType reports an input whose element type is wrong.
	ErrType = errors.New("serving: wrong element type")
	// ErrInput reports an unknown or missing input name, or a malformed tensor.
	ErrInput = errors.New("serving: bad input")
	// ErrModel reports a model file or byte slice that an engine cannot load.
	ErrModel = errors.New("serving: cannot load model")
	// ErrTooLarge reports a request with more rows than a Batcher accepts
	// (BatcherOptions.MaxRequestRows).
	ErrTooLarge = errors.New("serving: request too large")
	// ErrNotReady reports a model that has nothing to serve yet (a registry
	// alias before its first version loads). It is temporary: retry later.
	ErrNotReady = errors.New("serving: model not ready")
	// ErrConfig reports options out of range (NewBatcher's BatcherOptions).
	ErrConfig = errors.New("serving: bad configuration")
)

// RunError wraps an error an engine raised while running a model on inputs
// that passed validation. The model keeps serving.
type RunError struct {
	Model string
	Err   error
}

func (e *RunError) Error() string { return fmt.Sprintf("serving: %s: run failed: %v", e.Model, e.Err) }

// Unwrap returns the underlying error.
func (e *RunError) Unwrap() error { return e.Err }

// InputBorrower is implemented by models that read their inputs only during
// Predict and keep no reference to them afterwards. A Batcher in front of
// such a model reuses its merged input buffers from batch to batch.
type InputBorrower interface {
	Model
	// BorrowsInputs reports whether Predict is done with its inputs when it
	// returns.
	BorrowsInputs() bool
}

// Pinner is implemented by models that forward each request to a model
// that may change between requests, such as a registry alias that moves
// from version to version. Pin returns the model serving now, held until
// release is called, so that a caller who validated a request against the
// pinned model's Info runs it on that same model. A Batcher in front of a
// Pinner pins once per request, validates against the pinned model, merges
// only requests pinned to the same model, and runs each batch on it: the
// Batcher follows every change of Info from the next request on.
//
// The returned model reports what it serves to the requests' contexts
// (RequestContexts), so hooks attached to a request fire even when the
// request ran inside a merged batch. Pin returns an error matching
// ErrNotReady while there is nothing to serve.
type Pinner interface {
	Model
	Pin() (m Model, release func(), err error)
}

// InputError says what was wrong with one input. It matches ErrShape,
// ErrType, ErrInput or ErrTooLarge through errors.Is, depending on Kind.
type InputError struct {
	Input string // the input's name
	Kind  error  // ErrShape, ErrType, ErrInput or ErrTooLarge
	Got   string
	Want  string
}

func (e *InputError) Error() string {
	return fmt.Sprintf("serving: input %q: got %s, want %s", e.Input, e.Got, e.Want)
}

// Unwrap lets errors.Is match the error's kind.
func (e *InputError) Unwrap() error { return e.Kind }

// Info describes a model.
type Info struct {
	// Name is the name given at load time (the file name by default).
	Name    string
	Inputs  []IOInfo
	Outputs []IOInfo
	// Metadata recorded in the model file.
	Producer    string
	GraphName   string
	Domain      string
	Description string
	Version     int64
	Custom      map[string]string
	// Provider is the execution provider that actually runs the model
	// ("CPU", "CUDA" or "TensorRT"); Requested is the one asked for. They
	// differ only when CPU fallback was allowed and used.
	Provider  string
	Requested string
	// Batchable is true when requests can be merged along the first axis
	// of every input and output: each is a tensor with a dynamic first
	// axis, and the engine has evidence that the axes are one batch axis
	// (see BatchRule). A Batcher in front of a model that is not batchable
	// runs each request on its own.
	Batchable bool
	// BatchReason says why Batchable is true or false, and BatchRule which
	// rule decided (an engine's vocabulary; serving/onnx uses "structure",
	// "names", "probe" and "option").
	BatchReason string
	BatchRule   string
}

// Clone returns a deep copy of i that shares no slice or map with it.
func (i Info) Clone() Info {
	c := i
	c.Inputs = cloneIOs(i.Inputs)
	c.Outputs = cloneIOs(i.Outputs)
	if i.Custom != nil {
		c.Custom = make(map[string]string, len(i.Custom))
		for k, v := range i.Custom {
			c.Custom[k] = v
		}
	}
	return c
}

func cloneIOs(ios []IOInfo) []IOInfo {
	if ios == nil {
		return nil
	}
	out := make([]IOInfo, len(ios))
	for k, io := range ios {
		io.Shape = slices.Clone(io.Shape)
		io.DimNames = slices.Clone(io.DimNames)
		out[k] = io
	}
	return out
}

// Input returns the input named name.
func (i Info) Input(name string) (IOInfo, bool) {
	for _, in := range i.Inputs {
		if in.Name == name {
			return in, true
		}
	}
	return IOInfo{}, false
}

// IOInfo describes one input or output.
type IOInfo struct {
	Name string
	// Kind is KindTensor, KindSequence or KindMap.
	Kind ValueKind
	// ElementType and Shape describe tensors; -1 marks a dynamic axis.
	ElementType ElementType
	Shape       []int64
	// DimNames holds the symbolic name of each axis as written in the model
	// ("batch", "H"), or "" for fixed and unnamed axes; nil when the model
	// names none.
	DimNames []string
}

func (io IOInfo) String() string {
	if io.Kind != KindTensor {
		return fmt.Sprintf("%s %s", io.Name, io.Kind)
	}
	return fmt.Sprintf("%s %s%v", io.Name, io.ElementType, io.Shape)
}
