package oip

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/quiverml/quiver/serving"
)

// HeaderContentLength is the header of the binary tensor data extension:
// the length of the JSON part at the start of a request or response body,
// the rest being the raw data of the inputs (outputs) that name their size
// in parameters.binary_data_size.
const HeaderContentLength = "Inference-Header-Content-Length"

// inferRequest is a decoded inference request, from REST or gRPC.
type inferRequest struct {
	id     string
	inputs map[string]serving.Tensor
	// outputs are the requested outputs in request order; nil (an absent
	// or empty list) means all.
	outputs []outputRequest
	// binary is the request's binary_data_output: every output is answered
	// as binary data unless its own binary_data says otherwise.
	binary bool
}

type outputRequest struct {
	name   string
	binary bool
}

// The JSON inference request. Parameters keep only what the server
// acts on; others are accepted and ignored, as the protocol lets servers do.
type jsonRequest struct {
	ID         string         `json:"id"`
	Parameters jsonParameters `json:"parameters"`
	Inputs     []jsonInput    `json:"inputs"`
	Outputs    []jsonOutput   `json:"outputs"`
}

type jsonParameters struct {
	BinaryDataOutput *bool            `json:"binary_data_output"`
	BinaryDataSize   *int64           `json:"binary_data_size"`
	BinaryData       *bool            `json:"binary_data"`
	Classification   *json.RawMessage `json:"classification"`
	SharedMemory     *json.RawMessage `json:"shared_memory_region"`
}

type jsonInput struct {
	Name       string          `json:"name"`
	Shape      []int64         `json:"shape"`
	Datatype   string          `json:"datatype"`
	Parameters jsonParameters  `json:"parameters"`
	Data       json.RawMessage `json:"data"`
}

type jsonOutput struct {
	Name       string         `json:"name"`
	Parameters jsonParameters `json:"parameters"`
}

// decodeInferRequest decodes a REST inference request body. headerLen is
// the value of the Inference-Header-Content-Length header, or -1 when the
// request has none: then the whole body is JSON. Every size is checked
// against the body, and nothing allocated grows faster than the body: an
// input's elements are counted in the bytes that carry them before any is
// stored.
func decodeInferRequest(body []byte, headerLen int64) (*inferRequest, error) {
	header, binary := body, []byte(nil)
	if headerLen >= 0 {
		if headerLen > int64(len(body)) {
			return nil, fmt.Errorf("%w: %s is %d, but the body has only %d bytes", ErrInvalidRequest, HeaderContentLength, headerLen, len(body))
		}
		header, binary = body[:headerLen], body[headerLen:]
	}
	var jr jsonRequest
	if err := json.Unmarshal(header, &jr); err != nil {
		return nil, fmt.Errorf("%w: the body is not an inference request object: %s", ErrInvalidRequest, jsonError(err, header))
	}
	if err := jr.Parameters.check("the request", false); err != nil {
		return nil, err
	}
	req := &inferRequest{id: jr.ID, inputs: make(map[string]serving.Tensor, len(jr.Inputs))}
	if jr.Parameters.BinaryDataOutput != nil {
		req.binary = *jr.Parameters.BinaryDataOutput
	}
	if len(jr.Inputs) == 0 {
		return nil, fmt.Errorf("%w: no inputs; want \"inputs\": [{\"name\", \"shape\", \"datatype\", \"data\"}, ...]", ErrInvalidRequest)
	}
	rest := binary
	for i, in := range jr.Inputs {
		if in.Name == "" {
			return nil, fmt.Errorf("%w: input %d has no name", ErrInvalidRequest, i)
		}
		if _, dup := req.inputs[in.Name]; dup {
			return nil, fmt.Errorf("%w: input %q appears twice", ErrInvalidRequest, in.Name)
		}
		if in.Shape == nil {
			return nil, fmt.Errorf("%w: input %q has no shape", ErrInvalidRequest, in.Name)
		}
		t, err := parseDatatype("input", in.Name, in.Datatype)
		if err != nil {
			return nil, err
		}
		if err := in.Parameters.check(fmt.Sprintf("input %q", in.Name), true); err != nil {
			return nil, err
		}
		var tensor serving.Tensor
		if size := in.Parameters.BinaryDataSize; size != nil {
			if in.Data != nil {
				return nil, fmt.Errorf("%w: input %q has both data and parameters.binary_data_size; want one of them", ErrInvalidRequest, in.Name)
			}
			if headerLen < 0 {
				return nil, fmt.Errorf("%w: input %q sets binary_data_size, but the request has no %s header to say where its binary data starts", ErrInvalidRequest, in.Name, HeaderContentLength)
			}
			if *size < 0 || *size > int64(len(rest)) {
				return nil, fmt.Errorf("%w: input %q: binary_data_size %d, but %d bytes of binary data are left", ErrInvalidRequest, in.Name, *size, len(rest))
			}
			tensor, err = decodeRaw(in.Name, t, in.Shape, rest[:*size])
			rest = rest[*size:]
		} else {
			if in.Data == nil || bytes.Equal(in.Data, []byte("null")) {
				return nil, fmt.Errorf("%w: input %q has no data and no parameters.binary_data_size", ErrInvalidRequest, in.Name)
			}
			tensor, err = decodeJSONData(in.Name, t, in.Shape, in.Data)
		}
		if err != nil {
			return nil, err
		}
		req.inputs[in.Name] = tensor
	}
	if len(rest) > 0 {
		return nil, fmt.Errorf("%w: %d bytes of binary data follow the inputs' binary_data_size total of %d", ErrInvalidRequest, len(rest), len(binary)-len(rest))
	}
	if len(jr.Outputs) > 0 {
		req.outputs = make([]outputRequest, 0, len(jr.Outputs))
	}
	for i, o := range jr.Outputs {
		if o.Name == "" {
			return nil, fmt.Errorf("%w: requested output %d has no name", ErrInvalidRequest, i)
		}
		if err := o.Parameters.check(fmt.Sprintf("output %q", o.Name), false); err != nil {
			return nil, err
		}
		r := outputRequest{name: o.Name, binary: req.binary}
		if b := o.Parameters.BinaryData; b != nil {
			r.binary = *b
		}
		req.outputs = append(req.outputs, r)
	}
	if err := checkOutputNames(req.outputs); err != nil {
		return nil, err
	}
	return req, nil
}

// check refuses the parameters of extensions the server does not
// implement, which would otherwise be silently ignored.
func (p jsonParameters) check(where string, input bool) error {
	if p.Classification != nil {
		return fmt.Errorf("%w: %s asks for classification, which this server does not implement; request the raw outputs", ErrUnsupported, where)
	}
	if p.SharedMemory != nil {
		return fmt.Errorf("%w: %s uses shared memory, which this server does not implement; send the data in the request", ErrUnsupported, where)
	}
	if p.BinaryDataSize != nil && !input {
		return fmt.Errorf("%w: %s sets binary_data_size, which only inputs take", ErrInvalidRequest, where)
	}
	return nil
}

func checkOutputNames(outputs []outputRequest) error {
	for i, o := range outputs {
		for _, p := range outputs[:i] {
			if p.name == o.name {
				return fmt.Errorf("%w: output %q is requested twice", ErrInvalidRequest, o.name)
			}
		}
	}
	return nil
}

// jsonError says where JSON decoding failed.
func jsonError(err error, data []byte) string {
	if len(bytes.TrimSpace(data)) == 0 {
		return "the body is empty"
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%v at byte %d", se, se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "the request"
		}
		return fmt.Sprintf("%s is a JSON %s; want %s", field, te.Value, jsonKind(te.Type.String()))
	}
	return err.Error()
}

// jsonKind says what JSON a Go type of the request takes.
func jsonKind(goType string) string {
	switch goType {
	case "string":
		return "a string"
	case "int64":
		return "an integer"
	case "bool", "*bool":
		return "true or false"
	case "[]int64":
		return "an array of integers"
	case "oip.jsonRequest":
		return "an object"
	}
	return strconv.Quote(goType)
}
