package oip

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/quiverml/quiver/serving"
)

// Tensor data in JSON: a flat array of elements in row-major order, or the
// tensor's natural nested arrays (flattened as read), or a bare scalar for
// a tensor of one element. Numbers are coerced to the datatype when they fit
// exactly (an integer type takes 3 or 3.0, never 3.5 or 300 for INT8);
// floating-point types also take the strings "NaN", "Infinity" and
// "-Infinity", which is how answers carry those values, since JSON numbers
// cannot. FP16 and BF16 take numbers and round them to the nearest value.
// BOOL takes true and false; BYTES takes strings.

// jsonScanner walks the scalars of a JSON tensor data value, skipping the
// punctuation of arrays at any depth.
type jsonScanner struct {
	b []byte
	i int
}

// next returns the next scalar token (a number, a literal, or a string with
// its quotes), nil at the end.
func (s *jsonScanner) next() ([]byte, error) {
	for s.i < len(s.b) {
		switch c := s.b[s.i]; c {
		case ' ', '\t', '\r', '\n', '[', ']', ',':
			s.i++
		case '{', '}', ':':
			return nil, fmt.Errorf("an object; want numbers, booleans or strings in arrays")
		case '"':
			j := s.i + 1
			for j < len(s.b) && s.b[j] != '"' {
				if s.b[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(s.b) {
				return nil, fmt.Errorf("an unterminated string")
			}
			tok := s.b[s.i : j+1]
			s.i = j + 1
			return tok, nil
		default:
			j := s.i
			for j < len(s.b) {
				c := s.b[j]
				if c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ',' || c == ']' || c == '[' || c == '{' || c == '}' || c == '"' || c == ':' {
					break
				}
				j++
			}
			tok := s.b[s.i:j]
			s.i = j
			return tok, nil
		}
	}
	return nil, nil
}

// countJSONData counts the scalars of a JSON tensor data value.
func countJSONData(raw []byte) (int, error) {
	s := jsonScanner{b: raw}
	n := 0
	for {
		tok, err := s.next()
		if err != nil {
			return 0, err
		}
		if tok == nil {
			return n, nil
		}
		n++
	}
}

// decodeJSONData decodes one input's JSON data into a tensor of element type
// t and the given shape.
func decodeJSONData(name string, t serving.ElementType, shape []int64, raw []byte) (serving.Tensor, error) {
	if err := checkDims(name, shape); err != nil {
		return serving.Tensor{}, err
	}
	count, err := countJSONData(raw)
	if err != nil {
		return serving.Tensor{}, fmt.Errorf("%w: input %q: data holds %v", ErrInvalidRequest, name, err)
	}
	// count <= len(raw): each element takes at least one byte, so the
	// allocation below is bounded by the request's size.
	if n, err := checkShape(name, shape, count); err != nil || n != count {
		return serving.Tensor{}, fmt.Errorf("%w: input %q: data holds %d elements, shape %v needs %s", ErrInvalidRequest, name, count, shape, countString(shape))
	}
	s := jsonScanner{b: raw}
	bad := func(i int, tok []byte, want string) error {
		if len(tok) > 32 {
			tok = append(tok[:29:29], "..."...)
		}
		return fmt.Errorf("%w: input %q: element %d is %s; want %s", ErrInvalidRequest, name, i, tok, want)
	}
	var data any
	switch t {
	case serving.Bool:
		d := make([]bool, count)
		for i := range d {
			tok, _ := s.next()
			switch string(tok) {
			case "true":
				d[i] = true
			case "false":
			default:
				return serving.Tensor{}, bad(i, tok, "true or false")
			}
		}
		data = d
	case serving.String:
		d := make([]string, count)
		for i := range d {
			tok, _ := s.next()
			v, ok := jsonString(tok)
			if !ok {
				return serving.Tensor{}, bad(i, tok, "a string")
			}
			d[i] = v
		}
		data = d
	case serving.Float32:
		d := make([]float32, count)
		for i := range d {
			tok, _ := s.next()
			v, ok := jsonFloat(tok, 32)
			if !ok {
				return serving.Tensor{}, bad(i, tok, "an FP32 number")
			}
			d[i] = float32(v)
		}
		data = d
	case serving.Float64:
		d := make([]float64, count)
		for i := range d {
			tok, _ := s.next()
			v, ok := jsonFloat(tok, 64)
			if !ok {
				return serving.Tensor{}, bad(i, tok, "an FP64 number")
			}
			d[i] = v
		}
		data = d
	case serving.Float16:
		d := make([]serving.F16, count)
		for i := range d {
			tok, _ := s.next()
			v, ok := jsonFloat(tok, 32)
			if !ok {
				return serving.Tensor{}, bad(i, tok, "an FP16 number")
			}
			d[i] = serving.F16From(float32(v))
		}
		data = d
	case serving.BFloat16:
		d := make([]serving.BF16, count)
		for i := range d {
			tok, _ := s.next()
			v, ok := jsonFloat(tok, 32)
			if !ok {
				return serving.Tensor{}, bad(i, tok, "a BF16 number")
			}
			d[i] = serving.BF16From(float32(v))
		}
		data = d
	case serving.Int8:
		data, err = decodeInts[int8](&s, count, 8, bad, "an INT8 integer")
	case serving.Int16:
		data, err = decodeInts[int16](&s, count, 16, bad, "an INT16 integer")
	case serving.Int32:
		data, err = decodeInts[int32](&s, count, 32, bad, "an INT32 integer")
	case serving.Int64:
		data, err = decodeInts[int64](&s, count, 64, bad, "an INT64 integer")
	case serving.Uint8:
		data, err = decodeUints[uint8](&s, count, 8, bad, "a UINT8 integer")
	case serving.Uint16:
		data, err = decodeUints[uint16](&s, count, 16, bad, "a UINT16 integer")
	case serving.Uint32:
		data, err = decodeUints[uint32](&s, count, 32, bad, "a UINT32 integer")
	case serving.Uint64:
		data, err = decodeUints[uint64](&s, count, 64, bad, "a UINT64 integer")
	default:
		return serving.Tensor{}, fmt.Errorf("%w: input %q: element type %v", ErrUnsupported, name, t)
	}
	if err != nil {
		return serving.Tensor{}, err
	}
	return serving.Tensor{Shape: shape, Data: data}, nil
}

func decodeInts[T int8 | int16 | int32 | int64](s *jsonScanner, count, bits int, bad func(int, []byte, string) error, want string) ([]T, error) {
	d := make([]T, count)
	for i := range d {
		tok, _ := s.next()
		v, err := strconv.ParseInt(string(tok), 10, bits)
		if err != nil {
			f, ok := jsonFloat(tok, 64)
			lim := math.Ldexp(1, bits-1)
			if !ok || f != math.Trunc(f) || f < -lim || f >= lim {
				return nil, bad(i, tok, want)
			}
			v = int64(f)
		}
		d[i] = T(v)
	}
	return d, nil
}

func decodeUints[T uint8 | uint16 | uint32 | uint64](s *jsonScanner, count, bits int, bad func(int, []byte, string) error, want string) ([]T, error) {
	d := make([]T, count)
	for i := range d {
		tok, _ := s.next()
		v, err := strconv.ParseUint(string(tok), 10, bits)
		if err != nil {
			f, ok := jsonFloat(tok, 64)
			if !ok || f != math.Trunc(f) || f < 0 || f >= math.Ldexp(1, bits) {
				return nil, bad(i, tok, want)
			}
			v = uint64(f)
		}
		d[i] = T(v)
	}
	return d, nil
}

// jsonFloat parses a JSON number, or one of the strings "NaN", "Infinity",
// "-Infinity", at the given precision. A finite number too large for the
// precision is refused rather than turned into an infinity.
func jsonFloat(tok []byte, bits int) (float64, bool) {
	if len(tok) == 0 {
		return 0, false
	}
	if tok[0] == '"' {
		switch string(tok) {
		case `"NaN"`:
			return math.NaN(), true
		case `"Infinity"`, `"+Infinity"`, `"inf"`, `"+inf"`:
			return math.Inf(1), true
		case `"-Infinity"`, `"-inf"`:
			return math.Inf(-1), true
		}
		return 0, false
	}
	// strconv accepts forms JSON does not (hex, underscores, "Inf"): JSON
	// numbers start with a digit or '-'.
	if c := tok[0]; c != '-' && (c < '0' || c > '9') {
		return 0, false
	}
	for _, c := range tok {
		if !(c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
			return 0, false
		}
	}
	v, err := strconv.ParseFloat(string(tok), bits)
	if err != nil {
		return 0, false
	}
	return v, true
}

// jsonString returns the value of a JSON string token.
func jsonString(tok []byte) (string, bool) {
	if len(tok) < 2 || tok[0] != '"' || tok[len(tok)-1] != '"' {
		return "", false
	}
	inner := tok[1 : len(tok)-1]
	plain := utf8.Valid(inner)
	for _, c := range inner {
		if c == '\\' || c < 0x20 {
			plain = false
			break
		}
	}
	if plain {
		return string(inner), true
	}
	var v string
	if err := json.Unmarshal(tok, &v); err != nil {
		return "", false
	}
	return v, true
}

// appendJSONData appends t's elements as a flat JSON array.
func appendJSONData(buf []byte, output string, t serving.Tensor) ([]byte, error) {
	buf = append(buf, '[')
	switch d := t.Data.(type) {
	case []float32:
		for i, v := range d {
			buf = appendSep(buf, i)
			buf = appendFloat(buf, float64(v), 32)
		}
	case []float64:
		for i, v := range d {
			buf = appendSep(buf, i)
			buf = appendFloat(buf, v, 64)
		}
	case []serving.F16:
		for i, v := range d {
			buf = appendSep(buf, i)
			buf = appendFloat(buf, float64(v.Float32()), 32)
		}
	case []serving.BF16:
		for i, v := range d {
			buf = appendSep(buf, i)
			buf = appendFloat(buf, float64(v.Float32()), 32)
		}
	case []bool:
		for i, v := range d {
			buf = appendSep(buf, i)
			buf = strconv.AppendBool(buf, v)
		}
	case []string:
		for i, v := range d {
			if !utf8.ValidString(v) {
				return buf, fmt.Errorf("%w: output %q: BYTES element %d is not valid UTF-8, which JSON cannot carry; ask for binary data (parameters.binary_data)", ErrUnsupported, output, i)
			}
			buf = appendSep(buf, i)
			buf = appendJSONString(buf, v)
		}
	case []int8:
		buf = appendInts(buf, d)
	case []int16:
		buf = appendInts(buf, d)
	case []int32:
		buf = appendInts(buf, d)
	case []int64:
		buf = appendInts(buf, d)
	case []uint8:
		buf = appendUints(buf, d)
	case []uint16:
		buf = appendUints(buf, d)
	case []uint32:
		buf = appendUints(buf, d)
	case []uint64:
		buf = appendUints(buf, d)
	}
	return append(buf, ']'), nil
}

func appendSep(buf []byte, i int) []byte {
	if i > 0 {
		return append(buf, ',')
	}
	return buf
}

func appendInts[T int8 | int16 | int32 | int64](buf []byte, d []T) []byte {
	for i, v := range d {
		buf = appendSep(buf, i)
		buf = strconv.AppendInt(buf, int64(v), 10)
	}
	return buf
}

func appendUints[T uint8 | uint16 | uint32 | uint64](buf []byte, d []T) []byte {
	for i, v := range d {
		buf = appendSep(buf, i)
		buf = strconv.AppendUint(buf, uint64(v), 10)
	}
	return buf
}

// appendFloat writes the shortest decimal that reads back to the same value
// at the given precision; NaN and infinities, which JSON numbers cannot
// hold, as strings.
func appendFloat(buf []byte, v float64, bits int) []byte {
	switch {
	case math.IsNaN(v):
		return append(buf, `"NaN"`...)
	case math.IsInf(v, 1):
		return append(buf, `"Infinity"`...)
	case math.IsInf(v, -1):
		return append(buf, `"-Infinity"`...)
	}
	return strconv.AppendFloat(buf, v, 'g', -1, bits)
}

// appendJSONString appends s, valid UTF-8, as a JSON string.
func appendJSONString(buf []byte, s string) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		buf = append(buf, s[start:i]...)
		switch c {
		case '"', '\\':
			buf = append(buf, '\\', c)
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\r':
			buf = append(buf, '\\', 'r')
		case '\t':
			buf = append(buf, '\\', 't')
		default:
			buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
