package oip

import (
	"context"
	"errors"
	"net/http"

	"google.golang.org/grpc/codes"

	"github.com/quiverml/quiver/serving"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrModelNotFound reports a model name the Repository does not serve.
	ErrModelNotFound = errors.New("oip: model not found")
	// ErrVersionNotFound reports a version of a known model that the
	// Repository cannot serve.
	ErrVersionNotFound = errors.New("oip: model version not found")
	// ErrInvalidRequest reports a request that does not follow the protocol:
	// malformed JSON, an unknown datatype, a shape that disagrees with its
	// data, binary sizes that disagree with the body, an unknown or repeated
	// output.
	ErrInvalidRequest = errors.New("oip: invalid request")
	// ErrBodyTooLarge reports a request body over HandlerOptions.MaxBodyBytes.
	ErrBodyTooLarge = errors.New("oip: request body too large")
	// ErrUnsupported reports something the protocol cannot carry: an output
	// that is a sequence or a map, an element type with no datatype
	// (complex numbers), a BYTES element that is not UTF-8 in a JSON answer.
	ErrUnsupported = errors.New("oip: not representable in the protocol")
)

// statusCanceled is the status logged and counted when the client went away
// before its answer was ready ("client closed request", as nginx names it).
// Nobody reads the response; the code keeps such requests apart in metrics.
const statusCanceled = 499

// httpStatus maps an error to the HTTP status of its answer; see the table in
// the package documentation.
func httpStatus(err error) int {
	switch {
	case errors.Is(err, ErrModelNotFound), errors.Is(err, ErrVersionNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrBodyTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrInvalidRequest), errors.Is(err, ErrUnsupported),
		errors.Is(err, serving.ErrShape), errors.Is(err, serving.ErrType),
		errors.Is(err, serving.ErrInput), errors.Is(err, serving.ErrTooLarge):
		return http.StatusBadRequest
	case errors.Is(err, serving.ErrOverloaded), errors.Is(err, serving.ErrNotReady),
		errors.Is(err, serving.ErrClosed):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		return statusCanceled
	}
	return http.StatusInternalServerError
}

// grpcCode maps an error to the gRPC status code of its answer.
func grpcCode(err error) codes.Code {
	switch {
	case errors.Is(err, ErrModelNotFound), errors.Is(err, ErrVersionNotFound):
		return codes.NotFound
	case errors.Is(err, ErrBodyTooLarge), errors.Is(err, serving.ErrTooLarge):
		return codes.ResourceExhausted
	case errors.Is(err, ErrInvalidRequest), errors.Is(err, ErrUnsupported),
		errors.Is(err, serving.ErrShape), errors.Is(err, serving.ErrType),
		errors.Is(err, serving.ErrInput):
		return codes.InvalidArgument
	case errors.Is(err, serving.ErrOverloaded), errors.Is(err, serving.ErrNotReady),
		errors.Is(err, serving.ErrClosed):
		return codes.Unavailable
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	return codes.Internal
}
