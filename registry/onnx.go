package registry

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/quiverml/quiver/serving"
)

// OpenFunc opens the model file at path, naming it name. Engines offer one:
// serving/onnx's Opener opens files on ONNX Runtime.
type OpenFunc func(ctx context.Context, path, name string) (serving.Model, error)

// FileLoader returns a Loader that opens a version's entry file with open
// and checks the loaded model against the signature recorded in the
// manifest (CheckSignature), so a version whose interface changed
// unannounced is never swapped in. Versions whose Format is set and is not
// format are refused with ErrBadInput. Models are named "<model>/<version>".
//
// With the ONNX Runtime engine:
//
//	registry.FileLoader("onnx", onnx.Opener(onnx.Options{WarmUp: true}))
func FileLoader(format string, open OpenFunc) Loader {
	return func(ctx context.Context, v Version, dir string) (serving.Model, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if v.Format != "" && v.Format != format {
			return nil, fmt.Errorf("%w: %s/%d has format %q; want %q", ErrBadInput, v.Model, v.Number, v.Format, format)
		}
		m, err := open(ctx, filepath.Join(dir, v.Entry), v.Model+"/"+strconv.FormatInt(v.Number, 10))
		if err != nil {
			return nil, err
		}
		if err := CheckSignature(v.Signature, m.Info()); err != nil {
			_ = m.Close()
			return nil, fmt.Errorf("%s/%d: %w", v.Model, v.Number, err)
		}
		return m, nil
	}
}

// SignatureOf returns the signature of a loaded model, for Meta.Signature.
func SignatureOf(info serving.Info) Signature {
	conv := func(ios []serving.IOInfo) []TensorSpec {
		out := make([]TensorSpec, 0, len(ios))
		for _, io := range ios {
			ts := TensorSpec{Name: io.Name}
			if io.Kind == serving.KindTensor {
				ts.ElementType = io.ElementType.String()
				ts.Shape = slices.Clone(io.Shape)
			}
			out = append(out, ts)
		}
		return out
	}
	return Signature{Inputs: conv(info.Inputs), Outputs: conv(info.Outputs)}
}

// CheckSignature reports, with ErrSignature, how a loaded model differs from
// a recorded signature: a recorded input or output that is missing or has
// another element type or shape (-1 on either side matches any size), or,
// when inputs are recorded, a model input that is not among them (callers
// would not send it). An empty signature matches anything.
func CheckSignature(sig Signature, info serving.Info) error {
	check := func(kind string, want []TensorSpec, got []serving.IOInfo) error {
		for _, w := range want {
			i := slices.IndexFunc(got, func(g serving.IOInfo) bool { return g.Name == w.Name })
			if i < 0 {
				return fmt.Errorf("%w: %s %q is missing from the model", ErrSignature, kind, w.Name)
			}
			g := got[i]
			if w.ElementType != "" && g.ElementType.String() != w.ElementType {
				return fmt.Errorf("%w: %s %q: model has %s, manifest says %s", ErrSignature, kind, w.Name, g.ElementType, w.ElementType)
			}
			if w.Shape != nil && !shapesMatch(w.Shape, g.Shape) {
				return fmt.Errorf("%w: %s %q: model has shape %v, manifest says %v", ErrSignature, kind, w.Name, g.Shape, w.Shape)
			}
		}
		return nil
	}
	if err := check("input", sig.Inputs, info.Inputs); err != nil {
		return err
	}
	if err := check("output", sig.Outputs, info.Outputs); err != nil {
		return err
	}
	if len(sig.Inputs) > 0 {
		for _, g := range info.Inputs {
			if !slices.ContainsFunc(sig.Inputs, func(w TensorSpec) bool { return w.Name == g.Name }) {
				return fmt.Errorf("%w: model needs input %q that the manifest does not list", ErrSignature, g.Name)
			}
		}
	}
	return nil
}

func shapesMatch(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] >= 0 && b[i] >= 0 && a[i] != b[i] {
			return false
		}
	}
	return true
}
