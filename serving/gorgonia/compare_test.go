//go:build cgo

package gorgonia

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/onnx"
	"github.com/stretchr/testify/require"
)

// unsupportedModels are the test models this engine refuses, with what
// stops it: the comparison runs every other model.
var unsupportedModels = map[string]string{
	"center_rows.onnx": "ReduceMean",
	"image.onnx":       "ReduceMean",
	"multi_io.onnx":    "int64",
	"reflect_pad.onnx": "Pad",
	"sequence.onnx":    "Neg",
	"state.onnx":       "Squeeze",
	"types.onnx":       "float16",
}

// compareDims sizes the dynamic axes of each model's inputs, by axis name;
// unnamed or unlisted dynamic axes are 3.
var compareDims = map[string]map[string]int64{
	"ops_conv.onnx":   {"H": 11, "W": 9},
	"ops_pool.onnx":   {"H": 7, "W": 10},
	"ops_conv1d.onnx": {"L": 13},
	"conv_dyn.onnx":   {"DynamicDimension.1": 6, "DynamicDimension.2": 5},
}

// TestMatchesONNXRuntime runs every test model this engine supports on
// both engines with the same random inputs, at two batch sizes, and
// requires the same signature and every output within 1e-5.
func TestMatchesONNXRuntime(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(filepath.Dir(testModel("mlp")), "*.onnx"))
	require.NoError(t, err)
	// These must run; models added to testdata later run when the engine
	// supports them and are logged when it does not.
	mustRun := map[string]bool{"mlp.onnx": true, "bench_mlp.onnx": true, "conv_dyn.onnx": true, "fixed_batch.onnx": true}
	for _, path := range paths {
		if strings.HasPrefix(filepath.Base(path), "ops_") {
			mustRun[filepath.Base(path)] = true
		}
	}
	require.Len(t, mustRun, 15)
	ran := map[string]bool{}
	for _, path := range paths {
		name := filepath.Base(path)
		t.Run(strings.TrimSuffix(name, ".onnx"), func(t *testing.T) {
			gm, err := Load(context.Background(), path, Options{})
			if op, refused := unsupportedModels[name]; refused {
				require.ErrorIs(t, err, ErrUnsupported)
				require.ErrorIs(t, err, serving.ErrModel)
				require.Contains(t, err.Error(), op)
				return
			}
			if errors.Is(err, ErrUnsupported) && !mustRun[name] {
				t.Logf("not compared: %v", err)
				return
			}
			require.NoError(t, err)
			defer gm.Close()
			om, err := onnx.Load(context.Background(), path, onnx.Options{})
			require.NoError(t, err)
			defer om.Close()
			gi, oi := gm.Info(), om.Info()
			require.Equal(t, oi.Inputs, gi.Inputs)
			require.Equal(t, oi.Outputs, gi.Outputs)
			for _, batch := range []int64{1, 4} {
				in := randomInputs(gi, batch, compareDims[name], uint64(batch))
				want, err := om.Predict(context.Background(), in)
				require.NoError(t, err)
				got, err := gm.Predict(context.Background(), in)
				require.NoError(t, err)
				require.Len(t, got, len(want))
				for out, w := range want {
					g := got[out]
					require.Equal(t, w.Tensor.Shape, g.Tensor.Shape, "output %s", out)
					requireClose(t, w.Tensor.Data, g.Tensor.Data, 1e-5, "output %s at batch %d", out, batch)
				}
			}
			ran[name] = true
		})
	}
	for name := range mustRun {
		require.True(t, ran[name], "%s compared", name)
	}
}

// randomInputs makes inputs for info: first axes of batch rows when
// dynamic, other dynamic axes from dims (by name) or 3; floats normal,
// integers in [0, 10).
func randomInputs(info serving.Info, batch int64, dims map[string]int64, seed uint64) map[string]serving.Tensor {
	rng := rand.New(rand.NewPCG(seed, 99))
	in := map[string]serving.Tensor{}
	for _, io := range info.Inputs {
		shape := make([]int64, len(io.Shape))
		n := 1
		for k, d := range io.Shape {
			if d < 0 {
				d = 3
				if k == 0 {
					d = batch
				} else if len(io.DimNames) > k && dims[io.DimNames[k]] > 0 {
					d = dims[io.DimNames[k]]
				}
			}
			shape[k] = d
			n *= int(d)
		}
		switch io.ElementType {
		case serving.Float32:
			v := make([]float32, n)
			for i := range v {
				v[i] = float32(rng.NormFloat64())
			}
			in[io.Name] = serving.NewTensor(shape, v)
		case serving.Float64:
			v := make([]float64, n)
			for i := range v {
				v[i] = rng.NormFloat64()
			}
			in[io.Name] = serving.NewTensor(shape, v)
		case serving.Int64:
			v := make([]int64, n)
			for i := range v {
				v[i] = rng.Int64N(10)
			}
			in[io.Name] = serving.NewTensor(shape, v)
		}
	}
	return in
}

func requireClose(t *testing.T, want, got any, tol float64, msgAndArgs ...any) {
	t.Helper()
	w, g := floatsOf(want), floatsOf(got)
	require.Len(t, g, len(w), msgAndArgs...)
	worst, at := 0.0, -1
	for i := range w {
		d := math.Abs(w[i] - g[i])
		if math.IsNaN(d) || d > worst {
			worst, at = d, i
		}
	}
	if at >= 0 && (math.IsNaN(worst) || worst > tol) {
		require.Failf(t, "outputs differ", "element %d: want %g, got %g (|diff| %g > %g) %v", at, w[at], g[at], worst, tol, msgAndArgs)
	}
}

func floatsOf(v any) []float64 {
	switch d := v.(type) {
	case []float32:
		out := make([]float64, len(d))
		for i, x := range d {
			out[i] = float64(x)
		}
		return out
	case []float64:
		return d
	case []int64:
		out := make([]float64, len(d))
		for i, x := range d {
			out[i] = float64(x)
		}
		return out
	}
	return nil
}

// TestUnsupportedModelsListIsCurrent keeps unsupportedModels honest: every
// model it names exists.
func TestUnsupportedModelsListIsCurrent(t *testing.T) {
	var names []string
	for name := range unsupportedModels {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		_, err := Load(context.Background(), filepath.Join(filepath.Dir(testModel("mlp")), name), Options{})
		require.True(t, errors.Is(err, ErrUnsupported), "%s: %v", name, err)
	}
}
