package onnx

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"

	"github.com/quiverml/quiver/serving"
)

// probeTolerance is the relative difference allowed between a row run in a
// batch of two and the same row run alone: kernels may sum in another
// order at another batch size.
const probeTolerance = 1e-4

// probe decides batchability from evidence: it runs two generated rows
// together and each alone, and reports whether every output's first axis
// follows the batch and each row of the batch-2 run equals its own run. An
// error means the probe could not run at all (the caller then falls back
// to the name rule); a model that runs but mixes rows is a "no" with the
// reason.
func (m *Model) probe(opts Options) (bool, string, error) {
	rng := rand.New(rand.NewPCG(0x9e3779b9, 7))
	rows := make([]map[string]serving.Tensor, 2)
	for i := range rows {
		rows[i] = map[string]serving.Tensor{}
	}
	pair := map[string]serving.Tensor{}
	for _, in := range m.info.Inputs {
		shape := make([]int64, len(in.Shape))
		shape[0] = 1
		for k := 1; k < len(shape); k++ {
			shape[k] = in.Shape[k]
			if shape[k] < 0 {
				shape[k] = 1
				if k < len(in.DimNames) {
					if n, ok := opts.WarmUpDims[in.DimNames[k]]; ok {
						shape[k] = n
					}
				}
			}
		}
		for i := range rows {
			t, err := probeRow(in, shape, opts.WarmUpInputs, i, rng)
			if err != nil {
				return false, "", err
			}
			rows[i][in.Name] = t
		}
		joined, err := concatRows(rows[0][in.Name], rows[1][in.Name])
		if err != nil {
			return false, "", fmt.Errorf("input %q: %w", in.Name, err)
		}
		pair[in.Name] = joined
	}
	ctx := context.Background()
	both, err := m.Predict(ctx, pair)
	if err != nil {
		return false, "", fmt.Errorf("batch of 2: %w", err)
	}
	alone := make([]map[string]serving.Value, 2)
	for i := range rows {
		if alone[i], err = m.Predict(ctx, rows[i]); err != nil {
			return false, "", fmt.Errorf("batch of 1: %w", err)
		}
	}
	for _, o := range m.info.Outputs {
		got := both[o.Name]
		if got.Kind != serving.KindTensor {
			return false, "", fmt.Errorf("output %q is a %s; the probe compares tensors only", o.Name, got.Kind)
		}
		s := got.Tensor.Shape
		if len(s) == 0 || s[0] != 2 {
			return false, fmt.Sprintf("probe: output %q has shape %v for 2 input rows; its first axis does not follow the batch", o.Name, s), nil
		}
		for i := range alone {
			a := alone[i][o.Name].Tensor
			if len(a.Shape) == 0 || a.Shape[0] != 1 || !equalDims(a.Shape[1:], s[1:]) {
				return false, fmt.Sprintf("probe: output %q has shape %v for 1 input row and %v for 2", o.Name, a.Shape, s), nil
			}
			if !sameRow(got.Tensor.Data, i, a.Data) {
				return false, fmt.Sprintf("probe: row %d of output %q differs when run in a batch of 2; the model mixes rows", i, o.Name), nil
			}
		}
	}
	return true, "probe: every output's first axis follows the batch, and rows run together equal rows run alone", nil
}

// probeRow returns row i of the probe for input in: row i of the tensor
// WarmUpInputs gives (its last row when it has fewer), or generated values.
func probeRow(in serving.IOInfo, shape []int64, given map[string]serving.Tensor, i int, rng *rand.Rand) (serving.Tensor, error) {
	if t, ok := given[in.Name]; ok {
		if len(t.Shape) == 0 || t.Shape[0] < 1 {
			return serving.Tensor{}, fmt.Errorf("WarmUpInputs[%q] has shape %v; the probe needs at least one row", in.Name, t.Shape)
		}
		r := min(int64(i), t.Shape[0]-1)
		v := reflect.ValueOf(t.Data)
		if v.Kind() != reflect.Slice || v.Len()%int(t.Shape[0]) != 0 {
			return serving.Tensor{}, fmt.Errorf("WarmUpInputs[%q] does not fill its shape %v", in.Name, t.Shape)
		}
		n := v.Len() / int(t.Shape[0])
		return serving.Tensor{Shape: append([]int64{1}, t.Shape[1:]...), Data: v.Slice(int(r)*n, int(r+1)*n).Interface()}, nil
	}
	t := serving.ZeroTensor(in.ElementType, shape)
	if t.Data == nil {
		return serving.Tensor{}, fmt.Errorf("input %q: cannot generate %s values", in.Name, in.ElementType)
	}
	fillRandom(t.Data, rng)
	return t, nil
}

// fillRandom fills a zeroed slice with deterministic values: small
// non-negative integers (valid as ids and indices), normal floats.
func fillRandom(data any, rng *rand.Rand) {
	small := func() int { return rng.IntN(4) }
	switch d := data.(type) {
	case []float32:
		for i := range d {
			d[i] = float32(rng.NormFloat64())
		}
	case []float64:
		for i := range d {
			d[i] = rng.NormFloat64()
		}
	case []serving.F16:
		for i := range d {
			d[i] = serving.F16From(float32(rng.NormFloat64()))
		}
	case []serving.BF16:
		for i := range d {
			d[i] = serving.BF16From(float32(rng.NormFloat64()))
		}
	case []bool:
		for i := range d {
			d[i] = rng.IntN(2) == 1
		}
	case []string:
		for i := range d {
			d[i] = "s" + strconv.Itoa(small())
		}
	default:
		v := reflect.ValueOf(data)
		for i := 0; i < v.Len(); i++ {
			e := v.Index(i)
			switch e.Kind() {
			case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
				e.SetInt(int64(small()))
			case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
				e.SetUint(uint64(small()))
			}
		}
	}
}

// concatRows joins two one-row tensors of equal shape along axis 0.
func concatRows(a, b serving.Tensor) (serving.Tensor, error) {
	if !equalDims(a.Shape, b.Shape) {
		return serving.Tensor{}, fmt.Errorf("rows have shapes %v and %v", a.Shape, b.Shape)
	}
	va, vb := reflect.ValueOf(a.Data), reflect.ValueOf(b.Data)
	out := reflect.AppendSlice(reflect.MakeSlice(va.Type(), 0, va.Len()+vb.Len()), va)
	out = reflect.AppendSlice(out, vb)
	return serving.Tensor{Shape: append([]int64{2}, a.Shape[1:]...), Data: out.Interface()}, nil
}

func equalDims(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// sameRow reports whether row i of the two-row data equals the one-row
// data alone: within probeTolerance for floating point, exactly otherwise.
func sameRow(both any, i int, alone any) bool {
	vb, va := reflect.ValueOf(both), reflect.ValueOf(alone)
	n := va.Len()
	if vb.Len() != 2*n {
		return false
	}
	row := vb.Slice(i*n, (i+1)*n)
	for k := 0; k < n; k++ {
		x, y := row.Index(k), va.Index(k)
		fx, okx := asFloat(x)
		fy, _ := asFloat(y)
		if okx {
			if math.IsNaN(fx) != math.IsNaN(fy) || math.Abs(fx-fy) > probeTolerance*(1+math.Abs(fy)) {
				return false
			}
			continue
		}
		if !x.Equal(y) {
			return false
		}
	}
	return true
}

func asFloat(v reflect.Value) (float64, bool) {
	switch x := v.Interface().(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	case serving.F16:
		return float64(x.Float32()), true
	case serving.BF16:
		return float64(x.Float32()), true
	}
	return 0, false
}
