package serving

import (
	"context"
	"errors"
	"fmt"
)

// Model is anything that turns named input tensors into named output values.
// The ONNX Runtime implementation is returned by Load and LoadBytes; a
// Batcher is a Model that merges concurrent requests in front of another
// Model. Implementations are safe for concurrent use.
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
	// ErrProviderUnavailable is returned when the requested execution provider
	// is not available in the loaded ONNX Runtime and CPU fallback was not allowed.
	ErrProviderUnavailable = errors.New("serving: execution provider unavailable")
	// ErrModel reports a model file or byte slice that ONNX Runtime cannot load.
	ErrModel = errors.New("serving: cannot load model")
)

// InputError says what was wrong with one input. It matches ErrShape, ErrType
// or ErrInput through errors.Is, depending on Kind.
type InputError struct {
	Input string // the input's name
	Kind  error  // ErrShape, ErrType or ErrInput
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
	// Batchable is true when every tensor input and output has a dynamic
	// leading axis, so a Batcher can merge requests along it. A Batcher in
	// front of a model that is not batchable runs each request on its own.
	Batchable bool
	// BatchReason says why Batchable is false.
	BatchReason string
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
