package gorgonia

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quiverml/quiver/internal/onnxpb"
	"github.com/quiverml/quiver/serving"
)

// FuzzLoadBytes feeds arbitrary bytes to the loader: it must never panic,
// refuse what it cannot run with an error matching serving.ErrModel, and
// run what it accepts on small inputs with typed errors only. Decoding is
// bounded by the input (no tensor may declare more elements than it
// holds) and running by Options.MaxMachineBytes.
func FuzzLoadBytes(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join(filepath.Dir(testModel("mlp")), "*.onnx"))
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil && len(data) < 1<<16 {
			f.Add(data)
		}
	}
	f.Add(opModel(0, "Conv", []*onnxpb.AttributeProto{attrInts("pads", 1, 1, 1, 1)}, 1,
		in(sh(1, 1, 3, 3), make([]float32, 9)...), w(sh(1, 1, 2, 2), 1, 1, 1, 1)))
	f.Add(opModel(11, "Softmax", nil, 1, in(sh(2, 3), 1, 2, 3, 4, 5, 6)))
	f.Add(opModel(0, "Gather", nil, 1, w(sh(3, 2), 1, 2, 3, 4, 5, 6), ii(sh(2), 2, -1)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		m, err := LoadBytes(ctx, data, Options{MaxMachineBytes: 1 << 22, MaxIdle: 1, MaxShapes: 1})
		if err != nil {
			if !errors.Is(err, serving.ErrModel) {
				t.Fatalf("load error does not match serving.ErrModel: %v", err)
			}
			return
		}
		defer m.Close()
		in, ok := smallInputs(m.Info())
		if !ok {
			return
		}
		_, err = m.Predict(ctx, in)
		var ie *serving.InputError
		var re *serving.RunError
		switch {
		case err == nil, errors.As(err, &ie):
		case errors.As(err, &re):
			if strings.Contains(err.Error(), "panic") {
				t.Fatalf("a kernel panicked: %v", err)
			}
		default:
			t.Fatalf("untyped run error: %v", err)
		}
	})
}

// smallInputs makes zero inputs with dynamic axes of 2, when every input
// stays within 4096 elements.
func smallInputs(info serving.Info) (map[string]serving.Tensor, bool) {
	in := map[string]serving.Tensor{}
	for _, io := range info.Inputs {
		shape := make([]int64, len(io.Shape))
		n := int64(1)
		for k, d := range io.Shape {
			if d < 0 {
				d = 2
			}
			shape[k] = d
			if d > 4096 || n*d > 4096 {
				return nil, false
			}
			n *= d
		}
		var data any
		switch io.ElementType {
		case serving.Float32:
			data = make([]float32, n)
		case serving.Float64:
			data = make([]float64, n)
		case serving.Int64:
			data = make([]int64, n)
		case serving.Int32:
			data = make([]int32, n)
		default:
			return nil, false
		}
		in[io.Name] = serving.Tensor{Shape: shape, Data: data}
	}
	return in, true
}
