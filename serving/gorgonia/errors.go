package gorgonia

import (
	"errors"
	"fmt"

	"github.com/quiverml/quiver/serving"
)

// ErrUnsupported reports a model that uses an operator, attribute value,
// element type or opset this engine does not run. Errors that match it
// also match serving.ErrModel: the model cannot be loaded.
var ErrUnsupported = errors.New("serving/gorgonia: unsupported")

// UnsupportedError says which node uses what this engine does not run. It
// matches ErrUnsupported and serving.ErrModel through errors.Is.
type UnsupportedError struct {
	// Model is the model's name (Options.Name) when a load refused it, ""
	// from Parse.
	Model string
	// Node is the node's name in the model ("#3" for the fourth node when
	// it has none), or "" when the model as a whole is refused.
	Node string
	// Op is the node's operator ("Conv"), or "" with Node.
	Op string
	// What says what is unsupported and what is: "attribute
	// storage_order=1 not supported; supported: 0".
	What string
}

// Error says what the model uses that the engine does not run.
func (e *UnsupportedError) Error() string {
	prefix := "serving/gorgonia: "
	if e.Model != "" {
		prefix += fmt.Sprintf("model %q: ", e.Model)
	}
	if e.Node == "" && e.Op == "" {
		return prefix + e.What
	}
	return prefix + fmt.Sprintf("node %q (%s): %s", e.Node, e.Op, e.What)
}

// Is reports whether target is ErrUnsupported or serving.ErrModel.
func (e *UnsupportedError) Is(target error) bool {
	return target == ErrUnsupported || target == serving.ErrModel
}

// NodeError reports a node that cannot be built for the shapes it is
// given: a kernel larger than its padded input, operands that do not
// broadcast, a reshape to a different number of elements. Build returns
// it; Predict wraps it in a *serving.InputError of kind serving.ErrShape,
// since the request's shapes decided it.
type NodeError struct {
	Node string // the node's name, as in UnsupportedError
	Op   string
	Err  error
}

// Error names the node and says why it cannot be built.
func (e *NodeError) Error() string {
	return fmt.Sprintf("serving/gorgonia: node %q (%s): %v", e.Node, e.Op, e.Err)
}

// Unwrap returns the underlying error.
func (e *NodeError) Unwrap() error { return e.Err }

// malformedError reports bytes that are not a well-formed ONNX model, or
// a model that breaks ONNX's rules; it matches serving.ErrModel.
type malformedError struct {
	model string // set by a load
	msg   string
}

func (e *malformedError) Error() string {
	if e.model != "" {
		return fmt.Sprintf("%v %q: %s", serving.ErrModel, e.model, e.msg)
	}
	return fmt.Sprintf("%v: %s", serving.ErrModel, e.msg)
}

func (e *malformedError) Is(target error) bool { return target == serving.ErrModel }

func modelError(format string, args ...any) error {
	return &malformedError{msg: fmt.Sprintf(format, args...)}
}

// named records the model's name in a load error.
func named(err error, name string) error {
	var ue *UnsupportedError
	var me *malformedError
	switch {
	case errors.As(err, &ue):
		ue.Model = name
	case errors.As(err, &me):
		me.model = name
	}
	return err
}
