package quant

import "errors"

// Sentinel errors, checked with errors.Is. Returned errors wrap one of them
// and say what was wrong and what was expected.
var (
	// ErrShape reports slices whose lengths disagree with each other or with
	// a shape, or a shape with a negative dimension.
	ErrShape = errors.New("quant: wrong shape")
	// ErrAxis reports a channel axis outside [-rank, rank).
	ErrAxis = errors.New("quant: axis out of range")
	// ErrScale reports a scale that is zero, negative, NaN or infinite.
	ErrScale = errors.New("quant: invalid scale")
	// ErrRange reports an inverted (min > max) or non-finite range.
	ErrRange = errors.New("quant: invalid range")
	// ErrNonFinite reports NaN (or, where infinities are not allowed, ±Inf)
	// in input data.
	ErrNonFinite = errors.New("quant: non-finite value")
	// ErrEmpty reports an operation that needs data but got none, such as
	// fitting or calibrating on zero values.
	ErrEmpty = errors.New("quant: no data")
	// ErrNotFitted reports a ScalarQuantizer used before Fit.
	ErrNotFitted = errors.New("quant: quantizer not fitted")
	// ErrFormat reports bytes that are not a valid encoding (an ONNX model,
	// a packed int4 tensor, a serialized quantizer).
	ErrFormat = errors.New("quant: malformed input")
	// ErrUnsupported reports a valid model or request that quant cannot
	// handle (for example an opset without DequantizeLinear).
	ErrUnsupported = errors.New("quant: unsupported")
)
