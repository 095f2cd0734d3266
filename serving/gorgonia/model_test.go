package gorgonia

import (
	"context"
	"encoding/binary"
	"math"
	"os"
	"testing"

	"github.com/quiverml/quiver/internal/onnxpb"
	"github.com/quiverml/quiver/serving"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

func TestLoadMLPInfo(t *testing.T) {
	m := load(t, "mlp", Options{})
	info := m.Info()
	require.Equal(t, "mlp.onnx", info.Name)
	require.Equal(t, []serving.IOInfo{{Name: "x", Kind: serving.KindTensor, ElementType: serving.Float32, Shape: []int64{-1, 16}, DimNames: []string{"batch", ""}}}, info.Inputs)
	require.Equal(t, []serving.IOInfo{{Name: "y", Kind: serving.KindTensor, ElementType: serving.Float32, Shape: []int64{-1, 4}, DimNames: []string{"batch", ""}}}, info.Outputs)
	require.Equal(t, "quiver-testgen", info.Producer)
	require.Equal(t, int64(1), info.Version)
	require.Equal(t, "mlp", info.Description)
	require.Equal(t, map[string]string{"task": "tabular", "owner": "quiver"}, info.Custom)
	require.True(t, info.Batchable)
	require.Equal(t, RuleNames, info.BatchRule)
	require.Equal(t, `every named first axis is "batch"`, info.BatchReason)

	info.Inputs[0].Shape[1] = 99 // Info is a copy
	require.Equal(t, int64(16), m.Info().Inputs[0].Shape[1])
}

// mlpReference evaluates testdata/models/mlp.onnx in plain Go from the
// weights in the file, read with the ONNX protobuf types: relu(x W0 + b0)
// W1 + b1, so the engine is checked against a computation that shares
// none of its code.
func mlpReference(t *testing.T, x []float32, rows int) []float32 {
	t.Helper()
	data, err := os.ReadFile(testModel("mlp"))
	require.NoError(t, err)
	var mp onnxpb.ModelProto
	require.NoError(t, proto.Unmarshal(data, &mp))
	w := map[string][]float32{}
	dims := map[string][]int64{}
	for _, in := range mp.GetGraph().GetInitializer() {
		raw := in.GetRawData()
		vals := make([]float32, len(raw)/4)
		for i := range vals {
			vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		if len(raw) == 0 {
			vals = in.GetFloatData()
		}
		w[in.GetName()], dims[in.GetName()] = vals, in.GetDims()
	}
	layer := func(in []float32, wn, bn string, relu bool) []float32 {
		k, n := int(dims[wn][0]), int(dims[wn][1])
		out := make([]float32, rows*n)
		for r := 0; r < rows; r++ {
			for j := 0; j < n; j++ {
				s := float64(w[bn][j])
				for i := 0; i < k; i++ {
					s += float64(in[r*k+i]) * float64(w[wn][i*n+j])
				}
				if relu && s < 0 {
					s = 0
				}
				out[r*n+j] = float32(s)
			}
		}
		return out
	}
	return layer(layer(x, "w0", "b0", true), "w1", "b1", false)
}

func TestMLPMatchesIndependentComputation(t *testing.T) {
	m := load(t, "mlp", Options{})
	for _, rows := range []int{1, 3, 64} {
		x := randomFloats(1, rows*16)
		out := predict(t, m, map[string]serving.Tensor{"x": f32([]int64{int64(rows), 16}, x...)})
		require.Equal(t, []int64{int64(rows), 4}, out["y"].Tensor.Shape)
		require.InDeltaSlice(t, mlpReference(t, x, rows), out["y"].Tensor.Data, 1e-5)
	}
	st := m.Stats()
	require.Equal(t, uint64(3), st.Runs)
	require.Equal(t, uint64(3), st.Compiles, "one graph per batch size")
	require.Equal(t, 3, st.Shapes)
}

func TestRepeatedRunsReuseMachines(t *testing.T) {
	m := load(t, "mlp", Options{})
	x := randomFloats(2, 2*16)
	want := mlpReference(t, x, 2)
	for range 5 {
		out := predict(t, m, map[string]serving.Tensor{"x": f32([]int64{2, 16}, x...)})
		require.InDeltaSlice(t, want, out["y"].Tensor.Data, 1e-5)
	}
	st := m.Stats()
	require.Equal(t, uint64(5), st.Runs)
	require.Equal(t, uint64(1), st.Compiles)
	require.Equal(t, 1, st.Idle)
}

func TestPredictAfterClose(t *testing.T) {
	m, err := Load(context.Background(), testModel("mlp"), Options{})
	require.NoError(t, err)
	require.NoError(t, m.Close())
	_, err = m.Predict(context.Background(), map[string]serving.Tensor{"x": f32([]int64{1, 16}, make([]float32, 16)...)})
	require.ErrorIs(t, err, serving.ErrClosed)
	require.NoError(t, m.Close(), "Close twice is harmless")
}

func TestBatchability(t *testing.T) {
	cases := []struct {
		model  string
		opts   Options
		ok     bool
		rule   string
		reason string
	}{
		{"mlp", Options{}, true, RuleNames, `every named first axis is "batch"`},
		{"conv_dyn", Options{}, false, RuleNames, `output "y" has first axis "DynamicDimension.3", other tensors have "DynamicDimension.0"; this engine does not probe, so it runs unbatched (Options.Batching = BatchAlways merges requests)`},
		{"conv_dyn", Options{Batching: BatchAlways}, true, RuleOption, "Options.Batching is BatchAlways"},
		{"mlp", Options{Batching: BatchNever}, false, RuleOption, "Options.Batching is BatchNever"},
		{"fixed_batch", Options{Batching: BatchAlways}, false, RuleStructure, `input "x" has a fixed first axis of size 4`},
		{"ops_matmul", Options{}, false, RuleStructure, `input "x4" has a fixed first axis of size 1`},
	}
	for _, c := range cases {
		info := load(t, c.model, c.opts).Info()
		require.Equal(t, c.ok, info.Batchable, c.model)
		require.Equal(t, c.rule, info.BatchRule, c.model)
		require.Equal(t, c.reason, info.BatchReason, c.model)
	}
}

func TestWarmUp(t *testing.T) {
	m := load(t, "ops_conv", Options{WarmUp: true, WarmUpDims: map[string]int64{"H": 8, "W": 8}})
	require.Equal(t, Stats{Runs: 1, Compiles: 1, Shapes: 1, Idle: 1}, m.Stats(), "the warm-up compiled and ran batch 1")

	// The dilated max pool of ops_pool needs 3 rows: the default of 1 fails.
	_, err := Load(context.Background(), testModel("ops_pool"), Options{WarmUp: true})
	require.ErrorIs(t, err, serving.ErrShape)
	require.ErrorContains(t, err, `serving/gorgonia: warm-up of "ops_pool.onnx" failed`)
	_, err = Load(context.Background(), testModel("ops_pool"), Options{WarmUp: true, WarmUpDims: map[string]int64{"H": 3, "W": 3}})
	require.NoError(t, err)
}

func TestOpener(t *testing.T) {
	open := Opener(Options{}) // the shape of registry.OpenFunc
	m, err := open(context.Background(), testModel("mlp"), "mlp/3")
	require.NoError(t, err)
	defer m.Close()
	require.Equal(t, "mlp/3", m.Info().Name)
	m2, err := Opener(Options{Name: "fixed"})(context.Background(), testModel("mlp"), "mlp/4")
	require.NoError(t, err)
	defer m2.Close()
	require.Equal(t, "fixed", m2.Info().Name)
	_, err = open(context.Background(), testModel("nope"), "nope/1")
	require.ErrorIs(t, err, serving.ErrModel)
}
