package oip

import (
	"fmt"
	"strings"

	"github.com/quiverml/quiver/serving"
)

// Datatype names of the protocol, indexed by serving.ElementType. BF16 is
// the name Triton and KServe use for bfloat16; complex types have none.
var datatypeNames = [...]string{
	serving.Bool:     "BOOL",
	serving.Uint8:    "UINT8",
	serving.Uint16:   "UINT16",
	serving.Uint32:   "UINT32",
	serving.Uint64:   "UINT64",
	serving.Int8:     "INT8",
	serving.Int16:    "INT16",
	serving.Int32:    "INT32",
	serving.Int64:    "INT64",
	serving.Float16:  "FP16",
	serving.Float32:  "FP32",
	serving.Float64:  "FP64",
	serving.String:   "BYTES",
	serving.BFloat16: "BF16",
}

// Datatype returns the protocol's name for an element type ("FP32",
// "BYTES"), or "" for a type the protocol cannot carry (complex numbers,
// Undefined).
func Datatype(t serving.ElementType) string {
	if t >= 0 && int(t) < len(datatypeNames) {
		return datatypeNames[t]
	}
	return ""
}

// ElementType returns the element type of a protocol datatype name, or
// serving.Undefined for a name the protocol does not define.
func ElementType(datatype string) serving.ElementType {
	for t, n := range datatypeNames {
		if n != "" && n == datatype {
			return serving.ElementType(t)
		}
	}
	return serving.Undefined
}

// datatypeList is the list of accepted names, for error messages, in the
// specification's order.
const datatypeList = "BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES, BF16"

// metadataDatatype names an element type in model metadata: the protocol's
// name, or the engine's name in capitals for a type the protocol lacks, so
// that a client sees why it cannot send that input.
func metadataDatatype(t serving.ElementType) string {
	if d := Datatype(t); d != "" {
		return d
	}
	return strings.ToUpper(t.String())
}

// parseDatatype returns the element type of a request tensor's datatype.
func parseDatatype(kind, name, datatype string) (serving.ElementType, error) {
	t := ElementType(datatype)
	if t == serving.Undefined {
		return 0, fmt.Errorf("%w: %s %q: datatype %q is not one of %s", ErrInvalidRequest, kind, name, datatype, datatypeList)
	}
	return t, nil
}

// checkShape validates a request tensor's shape and returns its element
// count. limit bounds the count: a request cannot hold more elements than
// its bytes allow, so nothing is allocated for a shape the body cannot fill.
func checkShape(name string, shape []int64, limit int) (int, error) {
	if err := checkDims(name, shape); err != nil {
		return 0, err
	}
	for _, d := range shape {
		if d == 0 {
			return 0, nil
		}
	}
	n := int64(1)
	for _, d := range shape {
		if n > int64(limit)/d {
			return 0, fmt.Errorf("%w: input %q: shape %v holds more elements than the request carries", ErrInvalidRequest, name, shape)
		}
		n *= d
	}
	if n > int64(limit) {
		return 0, fmt.Errorf("%w: input %q: shape %v holds more elements than the request carries", ErrInvalidRequest, name, shape)
	}
	return int(n), nil
}

// checkDims refuses a negative dimension in a request tensor's shape.
func checkDims(name string, shape []int64) error {
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("%w: input %q: shape %v has a negative dimension; want sizes >= 0", ErrInvalidRequest, name, shape)
		}
	}
	return nil
}
