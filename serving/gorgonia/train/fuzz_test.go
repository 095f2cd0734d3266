package train_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/gorgonia/train"
	"github.com/quiverml/quiver/serving/servingtest"
)

// FuzzONNXModel feeds arbitrary bytes to the ONNXModel spec, which reads
// an ONNX file: New must never panic and must refuse what it cannot train
// with an error matching ErrSpec; a model it accepts predicts, takes a
// step on one row and exports, with typed errors only, and its export
// imports again.
func FuzzONNXModel(f *testing.F) {
	for _, spec := range []train.Spec{
		train.LogisticRegression{Features: 3},
		train.MLP{Sizes: []int{2, 4, 1}, Activation: train.Tanh},
		train.MLP{Sizes: []int{2, 3}, Output: train.Multiclass},
		train.TwoTower{User: []int{2, 3}, Item: []int{3, 3}},
	} {
		tr, err := train.New(spec, train.Options{})
		if err != nil {
			f.Fatal(err)
		}
		var b bytes.Buffer
		if err := tr.Export(&b); err != nil {
			f.Fatal(err)
		}
		tr.Close()
		f.Add(b.Bytes(), uint8(0))
	}
	paths, _ := filepath.Glob(filepath.Join(filepath.Dir(servingtest.ModelPath("mlp")), "*.onnx"))
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil && len(data) < 1<<16 {
			f.Add(data, uint8(2))
		}
	}
	f.Add([]byte{}, uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, output uint8) {
		ctx := context.Background()
		out := train.Output(output % 3)
		tr, err := train.New(train.ONNXModel{Model: data, Output: out}, train.Options{MaxBatchRows: 4})
		if err != nil {
			if !errors.Is(err, train.ErrSpec) {
				t.Fatalf("error does not match ErrSpec: %v", err)
			}
			return
		}
		defer tr.Close()
		in, ok := oneRow(tr.Info())
		if !ok {
			return
		}
		if _, err := tr.Predict(ctx, in); err != nil {
			requireTyped(t, "predict", err)
		}
		var target serving.Tensor
		switch out {
		case train.Multiclass:
			target = serving.NewTensor([]int64{1}, []int64{0})
		default:
			target = serving.NewTensor([]int64{1, 1}, []float32{1})
		}
		if _, err := tr.Update(ctx, in, target); err != nil {
			requireTyped(t, "update", err)
		}
		var b bytes.Buffer
		if err := tr.Export(&b); err != nil {
			t.Fatalf("export of an accepted model: %v", err)
		}
		again, err := train.New(train.ONNXModel{Model: b.Bytes(), Output: out}, train.Options{MaxBatchRows: 4})
		if err != nil {
			t.Fatalf("the export of an accepted model is refused: %v", err)
		}
		again.Close()
	})
}

// requireTyped fails unless err is one of the errors Predict and Update
// document.
func requireTyped(t *testing.T, what string, err error) {
	t.Helper()
	var ie *serving.InputError
	var re *serving.RunError
	var te *train.TargetError
	switch {
	case errors.As(err, &ie), errors.As(err, &te), errors.Is(err, train.ErrDiverged):
	case errors.As(err, &re):
		if strings.Contains(err.Error(), "panic") {
			t.Fatalf("%s panicked: %v", what, err)
		}
	default:
		t.Fatalf("%s: untyped error: %v", what, err)
	}
}

// oneRow makes zero inputs of one row for info, when every input stays
// within 4096 values.
func oneRow(info serving.Info) (map[string]serving.Tensor, bool) {
	in := map[string]serving.Tensor{}
	for _, io := range info.Inputs {
		shape := make([]int64, len(io.Shape))
		n := int64(1)
		for k, d := range io.Shape {
			if d < 0 {
				d = 1
			}
			if d > 4096 || n*d > 4096 {
				return nil, false
			}
			shape[k] = d
			n *= d
		}
		switch io.ElementType {
		case serving.Float32:
			in[io.Name] = serving.NewTensor(shape, make([]float32, n))
		case serving.Int64:
			in[io.Name] = serving.NewTensor(shape, make([]int64, n))
		case serving.Int32:
			in[io.Name] = serving.NewTensor(shape, make([]int32, n))
		default:
			return nil, false
		}
	}
	return in, true
}
