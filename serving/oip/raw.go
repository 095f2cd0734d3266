package oip

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/quiverml/quiver/serving"
)

// Raw tensor contents, shared by the binary tensor data extension of the
// REST API and the raw_input_contents / raw_output_contents of gRPC: the
// elements in row-major order, little-endian, without padding; BOOL is one
// byte (0 or 1); a BYTES element is its length as a 4-byte little-endian
// unsigned integer followed by its bytes.

// decodeRaw decodes the raw contents of one input. The element count comes
// from shape and must account for every byte of raw.
func decodeRaw(name string, t serving.ElementType, shape []int64, raw []byte) (serving.Tensor, error) {
	if err := checkDims(name, shape); err != nil {
		return serving.Tensor{}, err
	}
	if t == serving.String {
		// Every element takes at least its 4-byte length.
		n, err := checkShape(name, shape, len(raw)/4)
		if err != nil {
			return serving.Tensor{}, fmt.Errorf("%w: input %q: BYTES shape %v needs at least %s bytes (a 4-byte length per element), got %d", ErrInvalidRequest, name, shape, rawSize(shape, 4), len(raw))
		}
		data := make([]string, n)
		rest := raw
		for i := range data {
			if len(rest) < 4 {
				return serving.Tensor{}, fmt.Errorf("%w: input %q: BYTES element %d of %d: want a 4-byte length, %d bytes left", ErrInvalidRequest, name, i, n, len(rest))
			}
			l := binary.LittleEndian.Uint32(rest)
			rest = rest[4:]
			if uint64(l) > uint64(len(rest)) {
				return serving.Tensor{}, fmt.Errorf("%w: input %q: BYTES element %d of %d: length %d, but %d bytes left", ErrInvalidRequest, name, i, n, l, len(rest))
			}
			data[i] = string(rest[:l])
			rest = rest[l:]
		}
		if len(rest) != 0 {
			return serving.Tensor{}, fmt.Errorf("%w: input %q: %d bytes left after its %d BYTES elements", ErrInvalidRequest, name, len(rest), n)
		}
		return serving.Tensor{Shape: shape, Data: data}, nil
	}
	size := t.Size()
	if size == 0 || Datatype(t) == "" {
		return serving.Tensor{}, fmt.Errorf("%w: input %q: element type %v", ErrUnsupported, name, t)
	}
	n, err := checkShape(name, shape, len(raw)/size)
	if err != nil || n*size != len(raw) {
		return serving.Tensor{}, fmt.Errorf("%w: input %q: %s shape %v needs %s bytes, got %d", ErrInvalidRequest, name, Datatype(t), shape, rawSize(shape, size), len(raw))
	}
	le := binary.LittleEndian
	var data any
	switch t {
	case serving.Bool:
		d := make([]bool, n)
		for i, b := range raw {
			if b > 1 {
				return serving.Tensor{}, fmt.Errorf("%w: input %q: BOOL element %d is byte %d; want 0 or 1", ErrInvalidRequest, name, i, b)
			}
			d[i] = b == 1
		}
		data = d
	case serving.Uint8:
		d := make([]uint8, n)
		copy(d, raw)
		data = d
	case serving.Int8:
		d := make([]int8, n)
		for i, b := range raw {
			d[i] = int8(b)
		}
		data = d
	case serving.Uint16:
		d := make([]uint16, n)
		for i := range d {
			d[i] = le.Uint16(raw[2*i:])
		}
		data = d
	case serving.Int16:
		d := make([]int16, n)
		for i := range d {
			d[i] = int16(le.Uint16(raw[2*i:]))
		}
		data = d
	case serving.Float16:
		d := make([]serving.F16, n)
		for i := range d {
			d[i] = serving.F16(le.Uint16(raw[2*i:]))
		}
		data = d
	case serving.BFloat16:
		d := make([]serving.BF16, n)
		for i := range d {
			d[i] = serving.BF16(le.Uint16(raw[2*i:]))
		}
		data = d
	case serving.Uint32:
		d := make([]uint32, n)
		for i := range d {
			d[i] = le.Uint32(raw[4*i:])
		}
		data = d
	case serving.Int32:
		d := make([]int32, n)
		for i := range d {
			d[i] = int32(le.Uint32(raw[4*i:]))
		}
		data = d
	case serving.Float32:
		d := make([]float32, n)
		for i := range d {
			d[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
		data = d
	case serving.Uint64:
		d := make([]uint64, n)
		for i := range d {
			d[i] = le.Uint64(raw[8*i:])
		}
		data = d
	case serving.Int64:
		d := make([]int64, n)
		for i := range d {
			d[i] = int64(le.Uint64(raw[8*i:]))
		}
		data = d
	case serving.Float64:
		d := make([]float64, n)
		for i := range d {
			d[i] = math.Float64frombits(le.Uint64(raw[8*i:]))
		}
		data = d
	default:
		return serving.Tensor{}, fmt.Errorf("%w: input %q: element type %v", ErrUnsupported, name, t)
	}
	return serving.Tensor{Shape: shape, Data: data}, nil
}

// shapeCount is the element count of shape, or -1 when it overflows or has
// a negative dimension; for messages only.
func shapeCount(shape []int64) int64 {
	for _, d := range shape {
		if d == 0 {
			return 0
		}
	}
	n := int64(1)
	for _, d := range shape {
		if d < 0 || d > 0 && n > math.MaxInt64/d {
			return -1
		}
		n *= d
	}
	return n
}

// countString renders the element count of shape, for messages.
func countString(shape []int64) string {
	if n := shapeCount(shape); n >= 0 {
		return fmt.Sprint(n)
	}
	return "more than 2^63"
}

// rawSize renders the byte size shape needs, for messages.
func rawSize(shape []int64, size int) string {
	n := shapeCount(shape)
	if n < 0 || n > math.MaxInt64/int64(size) {
		return "more"
	}
	return fmt.Sprint(n * int64(size))
}

// rawLen returns the byte length of t's raw contents.
func rawLen(t serving.Tensor) int {
	if s, ok := t.Data.([]string); ok {
		n := 4 * len(s)
		for _, e := range s {
			n += len(e)
		}
		return n
	}
	return t.Len() * t.ElementType().Size()
}

// appendRaw appends t's raw contents to buf. t's element type must have a
// datatype (see Datatype).
func appendRaw(buf []byte, t serving.Tensor) []byte {
	le := binary.LittleEndian
	switch d := t.Data.(type) {
	case []bool:
		for _, v := range d {
			if v {
				buf = append(buf, 1)
			} else {
				buf = append(buf, 0)
			}
		}
	case []uint8:
		buf = append(buf, d...)
	case []int8:
		for _, v := range d {
			buf = append(buf, byte(v))
		}
	case []uint16:
		for _, v := range d {
			buf = le.AppendUint16(buf, v)
		}
	case []int16:
		for _, v := range d {
			buf = le.AppendUint16(buf, uint16(v))
		}
	case []serving.F16:
		for _, v := range d {
			buf = le.AppendUint16(buf, uint16(v))
		}
	case []serving.BF16:
		for _, v := range d {
			buf = le.AppendUint16(buf, uint16(v))
		}
	case []uint32:
		for _, v := range d {
			buf = le.AppendUint32(buf, v)
		}
	case []int32:
		for _, v := range d {
			buf = le.AppendUint32(buf, uint32(v))
		}
	case []float32:
		for _, v := range d {
			buf = le.AppendUint32(buf, math.Float32bits(v))
		}
	case []uint64:
		for _, v := range d {
			buf = le.AppendUint64(buf, v)
		}
	case []int64:
		for _, v := range d {
			buf = le.AppendUint64(buf, uint64(v))
		}
	case []float64:
		for _, v := range d {
			buf = le.AppendUint64(buf, math.Float64bits(v))
		}
	case []string:
		for _, v := range d {
			buf = le.AppendUint32(buf, uint32(len(v)))
			buf = append(buf, v...)
		}
	}
	return buf
}
