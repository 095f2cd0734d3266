package serving

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Validate checks inputs against a model's signature: every input present
// and known, element types equal, ranks equal, fixed axes of the right size,
// and data lengths matching shapes. It returns an *InputError naming the
// first bad input and saying what was got and what was wanted.
func Validate(info Info, inputs map[string]Tensor) error {
	_, err := validateInputs(info.Inputs, inputs, nil, false)
	return err
}

// validateInputs validates inputs and, when collect is set, appends them to
// ordered in the order of want.
func validateInputs(want []IOInfo, inputs map[string]Tensor, ordered []Tensor, collect bool) ([]Tensor, error) {
	// With as many tensors as inputs and every input present, no name is
	// unknown; the scan for unknown names runs only when that fails.
	if len(inputs) != len(want) {
		if err := unknownInput(want, inputs); err != nil {
			return ordered, err
		}
	}
	for i := range want {
		in := &want[i]
		t, ok := inputs[in.Name]
		if !ok {
			if err := unknownInput(want, inputs); err != nil {
				return ordered, err
			}
			return ordered, &InputError{Input: in.Name, Kind: ErrInput, Got: "no tensor",
				Want: fmt.Sprintf("%s %s", in.ElementType, shapeString(in.Shape))}
		}
		if err := validateOne(in, t); err != nil {
			return ordered, err
		}
		if collect {
			ordered = append(ordered, t)
		}
	}
	return ordered, nil
}

// unknownInput returns an error naming a tensor that is not an input, if any.
func unknownInput(want []IOInfo, inputs map[string]Tensor) error {
	for name := range inputs {
		if !slices.ContainsFunc(want, func(in IOInfo) bool { return in.Name == name }) {
			return &InputError{Input: name, Kind: ErrInput, Got: "an unknown input",
				Want: "one of " + inputNames(want)}
		}
	}
	return nil
}

func validateOne(in *IOInfo, t Tensor) error {
	if in.Kind != KindTensor {
		return &InputError{Input: in.Name, Kind: ErrType, Got: "a tensor", Want: "a " + in.Kind.String()}
	}
	et := t.ElementType()
	if et == Undefined {
		return &InputError{Input: in.Name, Kind: ErrType, Got: fmt.Sprintf("data of Go type %T", t.Data),
			Want: fmt.Sprintf("a []%s", goTypeName(in.ElementType))}
	}
	if et != in.ElementType {
		return &InputError{Input: in.Name, Kind: ErrType, Got: et.String(), Want: in.ElementType.String()}
	}
	if len(t.Shape) != len(in.Shape) {
		return &InputError{Input: in.Name, Kind: ErrShape,
			Got:  fmt.Sprintf("shape %s (rank %d)", shapeString(t.Shape), len(t.Shape)),
			Want: fmt.Sprintf("shape %s (rank %d)", shapeString(in.Shape), len(in.Shape))}
	}
	n := 1
	for k, d := range t.Shape {
		if d < 0 || (in.Shape[k] >= 0 && d != in.Shape[k]) {
			return &InputError{Input: in.Name, Kind: ErrShape,
				Got: "shape " + shapeString(t.Shape), Want: "shape " + shapeString(in.Shape)}
		}
		if d > 0 && n > (1<<40)/int(d) {
			return &InputError{Input: in.Name, Kind: ErrShape, Got: "shape " + shapeString(t.Shape),
				Want: "fewer than 2^40 elements"}
		}
		n *= int(d)
	}
	if l := t.Len(); l != n {
		return &InputError{Input: in.Name, Kind: ErrShape,
			Got:  fmt.Sprintf("%d elements for shape %s", l, shapeString(t.Shape)),
			Want: fmt.Sprintf("%d elements", n)}
	}
	return nil
}

func inputNames(want []IOInfo) string {
	names := make([]string, len(want))
	for i, in := range want {
		names[i] = fmt.Sprintf("%q", in.Name)
	}
	sort.Strings(names)
	return "[" + strings.Join(names, " ") + "]"
}

func shapeString(s []int64) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func goTypeName(t ElementType) string {
	switch t {
	case Float16:
		return "serving.F16"
	case BFloat16:
		return "serving.BF16"
	}
	return t.String()
}
