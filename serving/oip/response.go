package oip

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// encodeInferResponse appends the REST answer to buf: the JSON inference
// response, then the raw data of the outputs answered as binary data, in
// output order. jsonLen is the length of the JSON part, or -1 when no
// output is binary (the whole answer is JSON).
func encodeInferResponse(buf []byte, res *inferResult) (out []byte, jsonLen int, err error) {
	buf = append(buf[:0], `{"model_name":`...)
	buf = appendJSONString(buf, validUTF8(res.model))
	if res.version != "" {
		buf = append(buf, `,"model_version":`...)
		buf = appendJSONString(buf, res.version)
	}
	if res.id != "" {
		buf = append(buf, `,"id":`...)
		buf = appendJSONString(buf, validUTF8(res.id))
	}
	buf = append(buf, `,"outputs":[`...)
	binary := false
	for i, o := range res.outputs {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"name":`...)
		buf = appendJSONString(buf, validUTF8(o.name))
		buf = append(buf, `,"datatype":"`...)
		buf = append(buf, Datatype(o.tensor.ElementType())...)
		buf = append(buf, `","shape":[`...)
		for j, d := range o.tensor.Shape {
			buf = appendSep(buf, j)
			buf = strconv.AppendInt(buf, d, 10)
		}
		buf = append(buf, ']')
		if o.binary {
			binary = true
			buf = append(buf, `,"parameters":{"binary_data_size":`...)
			buf = strconv.AppendInt(buf, int64(rawLen(o.tensor)), 10)
			buf = append(buf, `}}`...)
			continue
		}
		buf = append(buf, `,"data":`...)
		if buf, err = appendJSONData(buf, o.name, o.tensor); err != nil {
			return buf, 0, err
		}
		buf = append(buf, '}')
	}
	buf = append(buf, "]}"...)
	if !binary {
		return buf, -1, nil
	}
	jsonLen = len(buf)
	for _, o := range res.outputs {
		if o.binary {
			buf = appendRaw(buf, o.tensor)
		}
	}
	return buf, jsonLen, nil
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
