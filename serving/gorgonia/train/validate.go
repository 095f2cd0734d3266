package train

import (
	"fmt"

	"github.com/quiverml/quiver/serving"
)

// TargetError says what was wrong with the targets given to Update. It
// matches ErrTarget and its Kind (serving.ErrShape, serving.ErrType or
// serving.ErrInput) through errors.Is.
type TargetError struct {
	Kind error
	Got  string
	Want string
}

func (e *TargetError) Error() string {
	return fmt.Sprintf("train: targets: got %s, want %s", e.Got, e.Want)
}

// Unwrap lets errors.Is match both ErrTarget and the error's kind.
func (e *TargetError) Unwrap() []error { return []error{ErrTarget, e.Kind} }

// checkInputs validates inputs against the model's signature and returns
// their number of rows. For Update (training set), it also requires at
// least one row, at most MaxBatchRows, and finite values.
func (t *Trainer) checkInputs(inputs map[string]serving.Tensor, training bool) (int, error) {
	if err := serving.Validate(t.info, inputs); err != nil {
		return 0, err
	}
	first := t.info.Inputs[0].Name
	rows := int(inputs[first].Shape[0])
	for _, io := range t.info.Inputs[1:] {
		if n := int(inputs[io.Name].Shape[0]); n != rows {
			return 0, &serving.InputError{Input: io.Name, Kind: serving.ErrShape,
				Got: fmt.Sprintf("%d rows", n), Want: fmt.Sprintf("%d rows, as input %q has", rows, first)}
		}
	}
	if !training {
		return rows, nil
	}
	if rows == 0 {
		return 0, &serving.InputError{Input: first, Kind: serving.ErrShape, Got: "0 rows", Want: "at least 1 row to train on"}
	}
	if rows > t.opts.MaxBatchRows {
		return 0, &serving.InputError{Input: first, Kind: serving.ErrTooLarge,
			Got: fmt.Sprintf("%d rows", rows), Want: fmt.Sprintf("at most %d rows (Options.MaxBatchRows)", t.opts.MaxBatchRows)}
	}
	for _, io := range t.info.Inputs {
		x, ok := inputs[io.Name].Data.([]float32)
		if !ok {
			continue
		}
		width := len(x) / rows
		for k, v := range x {
			if !isFinite32(v) {
				return 0, &serving.InputError{Input: io.Name, Kind: serving.ErrInput,
					Got: fmt.Sprintf("%v at row %d, column %d", v, k/width, k%width), Want: "finite values to train on"}
			}
		}
	}
	return rows, nil
}

// checkTargets validates an Update's targets for rows rows of inputs.
func (t *Trainer) checkTargets(y serving.Tensor, rows int) error {
	a := t.a
	k := a.outputs()
	var wantType serving.ElementType
	var shapes [][]int64
	var what string
	switch {
	case a.output == Multiclass:
		wantType, what = serving.Int64, fmt.Sprintf("class indices in [0, %d)", k)
		shapes = [][]int64{{int64(rows)}, {int64(rows), 1}}
	case a.output == Regression:
		wantType, what = serving.Float32, "finite values"
		shapes = [][]int64{{int64(rows), int64(k)}}
		if k == 1 {
			shapes = append(shapes, []int64{int64(rows)})
		}
	default: // Binary, TwoTower
		wantType, what = serving.Float32, "probabilities in [0, 1]"
		shapes = [][]int64{{int64(rows)}, {int64(rows), 1}}
	}
	wantShapes := fmt.Sprint(shapes[0])
	if len(shapes) > 1 {
		wantShapes += " or " + fmt.Sprint(shapes[1])
	}
	if et := y.ElementType(); et != wantType {
		got := et.String()
		if et == serving.Undefined {
			got = fmt.Sprintf("data of Go type %T", y.Data)
		}
		return &TargetError{Kind: serving.ErrType, Got: got, Want: fmt.Sprintf("%s %s", wantType, what)}
	}
	okShape := false
	for _, s := range shapes {
		if len(s) == len(y.Shape) && (len(s) == 1 || s[1] == y.Shape[1]) && y.Shape[0] == s[0] {
			okShape = true
		}
	}
	if !okShape {
		return &TargetError{Kind: serving.ErrShape, Got: fmt.Sprintf("shape %v", y.Shape), Want: "shape " + wantShapes + " (one row per input row)"}
	}
	n := rows
	if a.output == Regression {
		n = rows * k
	}
	if l := y.Len(); l != n {
		return &TargetError{Kind: serving.ErrShape, Got: fmt.Sprintf("%d elements for shape %v", l, y.Shape), Want: fmt.Sprintf("%d elements", n)}
	}
	switch d := y.Data.(type) {
	case []int64:
		for i, c := range d {
			if c < 0 || c >= int64(k) {
				return &TargetError{Kind: serving.ErrInput, Got: fmt.Sprintf("class %d at row %d", c, i), Want: what}
			}
		}
	case []float32:
		for i, v := range d {
			bad := !isFinite32(v)
			if a.output != Regression {
				bad = !(v >= 0 && v <= 1)
			}
			if bad {
				at := fmt.Sprintf("row %d", i)
				if a.output == Regression && k > 1 {
					at = fmt.Sprintf("row %d, column %d", i/k, i%k)
				}
				return &TargetError{Kind: serving.ErrInput, Got: fmt.Sprintf("%v at %s", v, at), Want: what}
			}
		}
	}
	return nil
}
