package serving

import (
	"fmt"
)

// mergeInputs concatenates the requests' inputs along axis 0 and pads the
// result to padded rows by repeating the last row. With reuse (one slot per
// input), the data is written into the slices held there when they are large
// enough, and the slices used are kept there for the next batch.
func mergeInputs(info Info, rs []*request, padded int, reuse []any) (map[string]Tensor, error) {
	out := make(map[string]Tensor, len(info.Inputs))
	for i, in := range info.Inputs {
		first := rs[0].ins[i]
		shape := append([]int64{int64(padded)}, first.Shape[1:]...)
		rowLen := 1
		for _, d := range first.Shape[1:] {
			rowLen *= int(d)
		}
		var prev any
		if reuse != nil {
			prev = reuse[i]
		}
		data, err := concatData(first.Data, prev, rs, i, in.Name, rowLen, padded)
		if err != nil {
			return nil, err
		}
		if reuse != nil {
			reuse[i] = data
		}
		out[in.Name] = Tensor{Shape: shape, Data: data}
	}
	return out, nil
}

func concatData(sample, prev any, rs []*request, input int, name string, rowLen, padded int) (any, error) {
	switch sample.(type) {
	case []float32:
		return concat[float32](prev, rs, input, rowLen, padded), nil
	case []float64:
		return concat[float64](prev, rs, input, rowLen, padded), nil
	case []int8:
		return concat[int8](prev, rs, input, rowLen, padded), nil
	case []uint8:
		return concat[uint8](prev, rs, input, rowLen, padded), nil
	case []int16:
		return concat[int16](prev, rs, input, rowLen, padded), nil
	case []uint16:
		return concat[uint16](prev, rs, input, rowLen, padded), nil
	case []int32:
		return concat[int32](prev, rs, input, rowLen, padded), nil
	case []uint32:
		return concat[uint32](prev, rs, input, rowLen, padded), nil
	case []int64:
		return concat[int64](prev, rs, input, rowLen, padded), nil
	case []uint64:
		return concat[uint64](prev, rs, input, rowLen, padded), nil
	case []bool:
		return concat[bool](prev, rs, input, rowLen, padded), nil
	case []string:
		return concat[string](prev, rs, input, rowLen, padded), nil
	case []F16:
		return concat[F16](prev, rs, input, rowLen, padded), nil
	case []BF16:
		return concat[BF16](prev, rs, input, rowLen, padded), nil
	case []complex64:
		return concat[complex64](prev, rs, input, rowLen, padded), nil
	case []complex128:
		return concat[complex128](prev, rs, input, rowLen, padded), nil
	}
	return nil, fmt.Errorf("serving: input %q: cannot batch data of type %T", name, sample)
}

func concat[T any](prev any, rs []*request, input, rowLen, padded int) []T {
	out, ok := prev.([]T)
	if ok && cap(out) >= padded*rowLen {
		out = out[:0]
	} else {
		out = make([]T, 0, padded*rowLen)
	}
	for _, r := range rs {
		out = append(out, r.ins[input].Data.([]T)...)
	}
	if rowLen > 0 {
		last := out[len(out)-rowLen:]
		for len(out) < padded*rowLen {
			out = append(out, last...)
		}
	}
	return out
}

// splitOutputs cuts each output along axis 0 into the requests' shares,
// dropping padding. Tensor shares are sub-slices of the batch output (no
// copy, capacity clipped so appending to one cannot overwrite another);
// sequences whose length is the batch size are split by element.
func splitOutputs(out map[string]Value, rs []*request, padded int) ([]map[string]Value, error) {
	parts := make([]map[string]Value, len(rs))
	for i, r := range rs {
		if r.into == nil {
			parts[i] = make(map[string]Value, len(out))
		}
	}
	for name, v := range out {
		switch v.Kind {
		case KindTensor:
			t := v.Tensor
			if len(t.Shape) == 0 || t.Shape[0] != int64(padded) {
				return nil, fmt.Errorf("serving: output %q has shape %v, want %d rows along axis 0 to split the batch", name, t.Shape, padded)
			}
			rowLen := 1
			for _, d := range t.Shape[1:] {
				rowLen *= int(d)
			}
			rank := len(t.Shape)
			var shapes []int64 // one allocation for every share's shape
			off := 0
			for i, r := range rs {
				if r.into != nil {
					into, err := fillRows(r.into[name], t.Data, off*rowLen, (off+r.rows)*rowLen, int64(r.rows), t.Shape[1:])
					if err != nil {
						return nil, fmt.Errorf("serving: output %q: %w", name, err)
					}
					r.into[name] = into
					off += r.rows
					continue
				}
				if shapes == nil {
					shapes = make([]int64, rank*len(rs))
				}
				shape := shapes[i*rank : (i+1)*rank : (i+1)*rank]
				shape[0] = int64(r.rows)
				copy(shape[1:], t.Shape[1:])
				data, err := sliceRows(t.Data, off*rowLen, (off+r.rows)*rowLen)
				if err != nil {
					return nil, fmt.Errorf("serving: output %q: %w", name, err)
				}
				parts[i][name] = TensorValue(Tensor{Shape: shape, Data: data})
				off += r.rows
			}
		case KindSequence:
			if len(v.Sequence) != padded {
				return nil, fmt.Errorf("serving: output %q is a sequence of %d values, want one per row (%d) to split the batch", name, len(v.Sequence), padded)
			}
			off := 0
			for i, r := range rs {
				if r.into != nil {
					return nil, fmt.Errorf("serving: output %q is a sequence; PredictInto returns tensors only", name)
				}
				parts[i][name] = Value{Kind: KindSequence, Sequence: v.Sequence[off : off+r.rows : off+r.rows]}
				off += r.rows
			}
		default:
			return nil, fmt.Errorf("serving: output %q is a %s, which cannot be split by row", name, v.Kind)
		}
	}
	return parts, nil
}

func sliceRows(data any, lo, hi int) (any, error) {
	switch d := data.(type) {
	case []float32:
		return d[lo:hi:hi], nil
	case []float64:
		return d[lo:hi:hi], nil
	case []int8:
		return d[lo:hi:hi], nil
	case []uint8:
		return d[lo:hi:hi], nil
	case []int16:
		return d[lo:hi:hi], nil
	case []uint16:
		return d[lo:hi:hi], nil
	case []int32:
		return d[lo:hi:hi], nil
	case []uint32:
		return d[lo:hi:hi], nil
	case []int64:
		return d[lo:hi:hi], nil
	case []uint64:
		return d[lo:hi:hi], nil
	case []bool:
		return d[lo:hi:hi], nil
	case []string:
		return d[lo:hi:hi], nil
	case []F16:
		return d[lo:hi:hi], nil
	case []BF16:
		return d[lo:hi:hi], nil
	case []complex64:
		return d[lo:hi:hi], nil
	case []complex128:
		return d[lo:hi:hi], nil
	}
	return nil, fmt.Errorf("cannot split data of type %T", data)
}

// fillFromValues stores whole tensor outputs into into, reusing its tensors
// where they fit (see Batcher.PredictInto).
func fillFromValues(into map[string]Tensor, out map[string]Value) error {
	for name, v := range out {
		if v.Kind != KindTensor {
			return fmt.Errorf("serving: output %q is a %s; PredictInto returns tensors only", name, v.Kind)
		}
		n := v.Tensor.Len()
		rows := int64(1)
		var rest []int64
		if len(v.Tensor.Shape) > 0 {
			rows, rest = v.Tensor.Shape[0], v.Tensor.Shape[1:]
		}
		t, err := fillRows(into[name], v.Tensor.Data, 0, n, rows, rest)
		if err != nil {
			return fmt.Errorf("serving: output %q: %w", name, err)
		}
		if len(v.Tensor.Shape) == 0 {
			t.Shape = t.Shape[:0] // a scalar
		}
		into[name] = t
	}
	return nil
}

// fillRows writes src[lo:hi] into dst's data, with shape [rows, rest...],
// reusing dst's data and shape slices when they fit.
func fillRows(dst Tensor, src any, lo, hi int, rows int64, rest []int64) (Tensor, error) {
	switch s := src.(type) {
	case []float32:
		return fillInto(dst, s[lo:hi], rows, rest), nil
	case []float64:
		return fillInto(dst, s[lo:hi], rows, rest), nil
	case []int8:
		return fillInto(dst, s[lo:hi], rows, rest), nil
	case []uint8:
		return fillInto(dst, s[lo:hi], rows, rest), nil
	case []int16:
		return fillInto(dst, s[lo:hi], rows, rest), nil
	case []uint16:
		return fillInto(dst, s[lo:hi], rows, rest), nil
	case []int32:
		return fillInto(dst, s[lo:hi], rows, rest), nil
	case []uint32:
		return fillInto(dst, s[lo:hi], rows, rest), nil
	case []int64:
		return fillInto(dst, s[lo:hi], rows, rest), nil
	case []uint64:
		return fillInto(dst, s[lo:hi], rows, rest), nil
	case []bool:
		return fillInto(dst, s[lo:hi], rows, rest), nil
	case []string:
		return fillInto(dst, s[lo:hi], rows, rest), nil
	case []F16:
		return fillInto(dst, s[lo:hi], rows, rest), nil
	case []BF16:
		return fillInto(dst, s[lo:hi], rows, rest), nil
	case []complex64:
		return fillInto(dst, s[lo:hi], rows, rest), nil
	case []complex128:
		return fillInto(dst, s[lo:hi], rows, rest), nil
	}
	return dst, fmt.Errorf("cannot copy data of type %T", src)
}

func fillInto[T any](dst Tensor, src []T, rows int64, rest []int64) Tensor {
	if d, ok := dst.Data.([]T); ok && len(d) == len(src) {
		copy(d, src) // dst.Data keeps its slice: no allocation
	} else {
		dst.Data = append([]T(nil), src...)
	}
	if cap(dst.Shape) < 1+len(rest) {
		dst.Shape = make([]int64, 1+len(rest))
	}
	dst.Shape = dst.Shape[:1+len(rest)]
	dst.Shape[0] = rows
	copy(dst.Shape[1:], rest)
	return dst
}
