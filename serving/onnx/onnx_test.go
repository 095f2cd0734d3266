package onnx

import (
	"github.com/quiverml/quiver/serving"

	"context"
	"errors"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quiverml/quiver/internal/onnxpb"
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
	require.Equal(t, map[string]string{"task": "tabular", "owner": "quiver"}, info.Custom)
	require.Equal(t, "CPU", info.Provider)
	require.True(t, info.Batchable, info.BatchReason)

	info.Inputs[0].Shape[1] = 99 // Info is a copy
	require.Equal(t, int64(16), m.Info().Inputs[0].Shape[1])
}

// mlpReference computes the test MLP in Go from the weights in the file,
// so the ONNX Runtime result is checked against an independent computation.
func TestMLPMatchesIndependentComputation(t *testing.T) {
	m := load(t, "mlp", Options{})
	x := seq(3*16, 0.1)
	out, err := m.Predict(context.Background(), map[string]serving.Tensor{"x": f32([]int64{3, 16}, x...)})
	require.NoError(t, err)
	y, err := out["y"].Tensor.Float32s()
	require.NoError(t, err)
	require.Equal(t, []int64{3, 4}, out["y"].Tensor.Shape)
	want := mlpReference(t, x, 3)
	for i := range want {
		require.InDelta(t, want[i], y[i], 1e-4, "element %d", i)
	}
}

func TestMultiIO(t *testing.T) {
	m := load(t, "multi_io", Options{})
	out, err := m.Predict(context.Background(), map[string]serving.Tensor{
		"a":   f32([]int64{2, 4}, 1, -2, 3, -4, 5, 6, -7, 8),
		"b":   f32([]int64{2, 4}, 1, 1, 1, 1, 2, 2, 2, 2),
		"ids": serving.NewTensor([]int64{2, 3}, []int64{1, 2, 3, 10, 20, 30}),
	})
	require.NoError(t, err)
	require.Equal(t, []float32{2, -1, 4, -3, 7, 8, -5, 10}, out["sum"].Tensor.Data)
	require.Equal(t, []float32{1, -2, 3, -4, 10, 12, -14, 16}, out["prod"].Tensor.Data)
	require.Equal(t, []int64{2, 3, 4, 11, 21, 31}, out["ids_next"].Tensor.Data)
	require.Equal(t, []bool{true, false, true, false, true, true, false, true}, out["positive"].Tensor.Data)
}

func TestEveryElementTypeRoundTrips(t *testing.T) {
	m := load(t, "types", Options{})
	half := []serving.F16{serving.F16From(1.5), serving.F16From(-2), serving.F16From(0.25), serving.F16From(100), serving.F16From(-0.125), serving.F16From(3)}
	bf := []serving.BF16{serving.BF16From(1.5), serving.BF16From(-3), serving.BF16From(7), serving.BF16From(0.5)}
	in := map[string]serving.Tensor{
		"half": serving.NewTensor([]int64{2, 3}, half),
		"flag": serving.NewTensor([]int64{2, 2}, []bool{true, false, false, true}),
		"f64":  serving.NewTensor([]int64{2, 2}, []float64{1.25, -2, math.MaxFloat64, 4}),
		"i8":   serving.NewTensor([]int64{2, 2}, []int8{-128, 0, 5, 127}),
		"u8":   serving.NewTensor([]int64{2, 2}, []uint8{0, 1, 200, 255}),
		"i16":  serving.NewTensor([]int64{2, 2}, []int16{-32768, 2, 3, 32767}),
		"u16":  serving.NewTensor([]int64{2, 2}, []uint16{0, 2, 3, 65535}),
		"i32":  serving.NewTensor([]int64{2, 2}, []int32{math.MinInt32, 2, 3, math.MaxInt32}),
		"u32":  serving.NewTensor([]int64{2, 2}, []uint32{0, 2, 3, math.MaxUint32}),
		"i64":  serving.NewTensor([]int64{2, 2}, []int64{math.MinInt64, 2, 3, math.MaxInt64}),
		"u64":  serving.NewTensor([]int64{2, 2}, []uint64{0, 2, 3, math.MaxUint64}),
		"bf16": serving.NewTensor([]int64{2, 2}, bf),
		"str":  serving.NewTensor([]int64{2, 2}, []string{"a", "", "héllo", "大"}),
	}
	out, err := m.Predict(context.Background(), in)
	require.NoError(t, err)
	for _, name := range []string{"f64", "i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64", "bf16", "str"} {
		require.Equal(t, in[name].Data, out[name+"_out"].Tensor.Data, name)
		require.Equal(t, in[name].Shape, out[name+"_out"].Tensor.Shape, name)
	}
	got := out["half_x2"].Tensor.Data.([]serving.F16)
	require.Len(t, got, 6)
	for i := range half {
		require.Equal(t, 2*half[i].Float32(), got[i].Float32(), "half %d", i)
	}
	require.Equal(t, []bool{false, true, true, false}, out["not_flag"].Tensor.Data)
}

func TestSequenceOutput(t *testing.T) {
	m := load(t, "sequence", Options{})
	require.Equal(t, serving.KindSequence, m.Info().Outputs[0].Kind)
	out, err := m.Predict(context.Background(), map[string]serving.Tensor{"x": f32([]int64{2, 2}, 1, -2, 3, -4)})
	require.NoError(t, err)
	parts := out["parts"]
	require.Equal(t, serving.KindSequence, parts.Kind)
	require.Len(t, parts.Sequence, 2)
	require.Equal(t, []float32{1, 0, 3, 0}, parts.Sequence[0].Tensor.Data)
	require.Equal(t, []float32{-1, 2, -3, 4}, parts.Sequence[1].Tensor.Data)
}

// TestThirdPartySklearnMaps runs a random forest exported by skl2onnx, whose
// probabilities come back as a sequence of maps.
func TestThirdPartySklearnMaps(t *testing.T) {
	m, err := Load(context.Background(), thirdPartyModel(t, "sklearn_randomforest.onnx"), Options{})
	require.NoError(t, err)
	defer m.Close()
	info := m.Info()
	require.Equal(t, []int64{-1, 4}, info.Inputs[0].Shape)
	require.Equal(t, "X", info.Inputs[0].Name)
	out, err := m.Predict(context.Background(), map[string]serving.Tensor{
		"X": f32([]int64{2, 4}, 5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3),
	})
	require.NoError(t, err)
	probs := out["output_probability"]
	require.Equal(t, serving.KindSequence, probs.Kind)
	require.Len(t, probs.Sequence, 2)
	labels := out["output_label"].Tensor.Data.([]int64)
	for i, p := range probs.Sequence {
		require.Equal(t, serving.KindMap, p.Kind)
		keys := p.Keys.Data.([]int64)
		vals := p.Values.Data.([]float32)
		require.Equal(t, len(keys), len(vals))
		var sum float32
		best := 0
		for j := range vals {
			sum += vals[j]
			if vals[j] > vals[best] {
				best = j
			}
		}
		require.InDelta(t, 1, sum, 1e-4)
		require.Equal(t, keys[best], labels[i], "label is the most probable class")
	}
}

func TestScalarAndStateInputs(t *testing.T) {
	m := load(t, "state", Options{})
	info := m.Info()
	require.False(t, info.Batchable)
	require.NotEmpty(t, info.BatchReason)
	out, err := m.Predict(context.Background(), map[string]serving.Tensor{
		"x":     f32([]int64{2, 4}, 1, 2, 3, 4, 5, 6, 7, 8),
		"h":     f32([]int64{1, 2, 4}, 1, 1, 1, 1, 2, 2, 2, 2),
		"scale": f32([]int64{}, 0.5),
	})
	require.NoError(t, err)
	require.Equal(t, []float32{1, 1.5, 2, 2.5, 3.5, 4, 4.5, 5}, out["y"].Tensor.Data)
	require.Equal(t, []int64{1, 2, 4}, out["h_next"].Tensor.Shape)
}

func TestDynamicSpatialAxes(t *testing.T) {
	m := load(t, "image", Options{})
	require.True(t, m.Info().Batchable)
	require.Equal(t, []string{"batch", "", "H", "W"}, m.Info().Inputs[0].DimNames)
	img := make([]float32, 1*3*2*5)
	for i := range img {
		img[i] = float32(i / 10) // channel c holds c
	}
	out, err := m.Predict(context.Background(), map[string]serving.Tensor{"img": f32([]int64{1, 3, 2, 5}, img...)})
	require.NoError(t, err)
	require.Equal(t, []float32{0, 2, 6}, out["features"].Tensor.Data)
}

func TestFixedFirstAxis(t *testing.T) {
	m := load(t, "fixed_batch", Options{})
	info := m.Info()
	require.False(t, info.Batchable)
	require.Contains(t, info.BatchReason, "fixed first axis")
	_, err := m.Predict(context.Background(), map[string]serving.Tensor{"x": f32([]int64{3, 8}, seq(24, 1)...)})
	require.ErrorIs(t, err, serving.ErrShape)
}

func TestValidationErrors(t *testing.T) {
	m := load(t, "multi_io", Options{})
	good := func() map[string]serving.Tensor {
		return map[string]serving.Tensor{
			"a":   f32([]int64{1, 4}, 1, 2, 3, 4),
			"b":   f32([]int64{1, 4}, 1, 2, 3, 4),
			"ids": serving.NewTensor([]int64{1, 3}, []int64{1, 2, 3}),
		}
	}
	cases := []struct {
		name   string
		mutate func(map[string]serving.Tensor)
		kind   error
		msg    string
	}{
		{"unknown input", func(in map[string]serving.Tensor) { in["c"] = in["a"] }, serving.ErrInput, `input "c": got an unknown input, want one of ["a" "b" "ids"]`},
		{"missing input", func(in map[string]serving.Tensor) { delete(in, "b") }, serving.ErrInput, `input "b": got no tensor, want float32 [-1 4]`},
		{"wrong type", func(in map[string]serving.Tensor) { in["ids"] = serving.NewTensor([]int64{1, 3}, []int32{1, 2, 3}) }, serving.ErrType, `input "ids": got int32, want int64`},
		{"wrong rank", func(in map[string]serving.Tensor) { in["a"] = f32([]int64{4}, 1, 2, 3, 4) }, serving.ErrShape, `input "a": got shape [4] (rank 1), want shape [-1 4] (rank 2)`},
		{"wrong fixed axis", func(in map[string]serving.Tensor) { in["a"] = f32([]int64{1, 3}, 1, 2, 3) }, serving.ErrShape, `input "a": got shape [1 3], want shape [-1 4]`},
		{"data too short", func(in map[string]serving.Tensor) { in["a"] = f32([]int64{2, 4}, 1, 2, 3, 4) }, serving.ErrShape, `input "a": got 4 elements for shape [2 4], want 8 elements`},
		{"negative dim", func(in map[string]serving.Tensor) { in["a"] = f32([]int64{-1, 4}, 1, 2, 3, 4) }, serving.ErrShape, `got shape [-1 4]`},
		{"nil data", func(in map[string]serving.Tensor) { in["a"] = serving.Tensor{Shape: []int64{1, 4}} }, serving.ErrType, `got data of Go type <nil>, want a []float32`},
		{"unsupported Go type", func(in map[string]serving.Tensor) {
			in["a"] = serving.Tensor{Shape: []int64{1, 4}, Data: []int{1, 2, 3, 4}}
		}, serving.ErrType, `Go type []int`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := good()
			c.mutate(in)
			_, err := m.Predict(context.Background(), in)
			require.ErrorIs(t, err, c.kind)
			var ie *serving.InputError
			require.True(t, errors.As(err, &ie))
			require.Contains(t, err.Error(), c.msg)
		})
	}
	// State intact: the model still answers.
	_, err := m.Predict(context.Background(), good())
	require.NoError(t, err)
}

func TestMismatchedBatchSizesIsAnErrorNotACrash(t *testing.T) {
	m := load(t, "state", Options{})
	in := map[string]serving.Tensor{
		"x":     f32([]int64{2, 4}, seq(8, 1)...),
		"h":     f32([]int64{1, 3, 4}, seq(12, 1)...),
		"scale": f32([]int64{}, 2),
	}
	_, err := m.Predict(context.Background(), in)
	var re *serving.RunError
	require.ErrorAs(t, err, &re)
	in["h"] = f32([]int64{1, 2, 4}, seq(8, 1)...)
	_, err = m.Predict(context.Background(), in)
	require.NoError(t, err, "the model still serves after a failed run")
}

func TestCorruptModels(t *testing.T) {
	data, err := os.ReadFile(testModel("mlp"))
	require.NoError(t, err)
	for name, b := range map[string][]byte{
		"empty":     {},
		"truncated": data[:len(data)/2],
		"garbage":   []byte("definitely not a protobuf \xff\xff\xff"),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadBytes(context.Background(), b, Options{Name: name})
			require.ErrorIs(t, err, serving.ErrModel)
			require.Contains(t, err.Error(), name)
		})
	}
	_, err = Load(context.Background(), "/nonexistent/model.onnx", Options{})
	require.ErrorIs(t, err, serving.ErrModel)
}

func TestBadOptions(t *testing.T) {
	_, err := Load(context.Background(), testModel("mlp"), Options{Provider: "TPU"})
	require.ErrorContains(t, err, `unknown execution provider "TPU"`)
	_, err = Load(context.Background(), testModel("mlp"), Options{IntraOpThreads: -1})
	require.ErrorContains(t, err, "thread counts")
	_, err = Load(context.Background(), testModel("mlp"), Options{CUDA: CUDAOptions{ConvAlgoSearch: "FAST"}})
	require.ErrorContains(t, err, "ConvAlgoSearch")
}

func TestSessionOptionsVariants(t *testing.T) {
	x := f32([]int64{2, 16}, seq(32, 0.3)...)
	var ref []float32
	for _, o := range []Options{
		{},
		{GraphOptimization: OptimizeNone, DisableCPUArena: true},
		{GraphOptimization: OptimizeBasic, IntraOpThreads: 2, InterOpThreads: 2},
		{GraphOptimization: OptimizeExtended, WarmUp: true},
	} {
		m := load(t, "mlp", o)
		out, err := m.Predict(context.Background(), map[string]serving.Tensor{"x": x})
		require.NoError(t, err)
		y, _ := out["y"].Tensor.Float32s()
		if ref == nil {
			ref = y
			continue
		}
		for i := range y {
			require.InDelta(t, ref[i], y[i], 1e-5)
		}
	}
}

func TestCUDAUnavailable(t *testing.T) {
	if hasGPU() {
		t.Skip("a GPU is present; TestCUDAOnGPU covers it")
	}
	for _, p := range []Provider{ProviderCUDA, ProviderTensorRT} {
		_, err := Load(context.Background(), testModel("mlp"), Options{Provider: p, CUDA: CUDAOptions{DeviceID: 0, MemoryLimit: 1 << 30, ConvAlgoSearch: "HEURISTIC"}})
		require.ErrorIs(t, err, ErrProviderUnavailable, "provider %s", p)
		require.Contains(t, err.Error(), string(p))

		var logs strings.Builder
		m, err := Load(context.Background(), testModel("mlp"), Options{Provider: p, AllowCPUFallback: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		require.NoError(t, err)
		info := m.Info()
		require.Equal(t, "CPU", info.Provider)
		require.Equal(t, string(p), info.Requested)
		require.Contains(t, logs.String(), "falling back to CPU")
		_, err = m.Predict(context.Background(), map[string]serving.Tensor{"x": f32([]int64{1, 16}, seq(16, 1)...)})
		require.NoError(t, err)
		require.NoError(t, m.Close())
	}
}

func TestCloseDrainsAndRejects(t *testing.T) {
	before := LiveSessions()
	m, err := Load(context.Background(), testModel("bench_mlp"), Options{})
	require.NoError(t, err)
	require.Equal(t, before+1, LiveSessions())
	x := f32([]int64{64, 64}, seq(64*64, 0.01)...)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	ran := make(chan struct{}, 8*20) // one per completed run
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				if _, err := m.Predict(context.Background(), map[string]serving.Tensor{"x": x}); err != nil {
					errs <- err
					return
				}
				ran <- struct{}{}
			}
		}()
	}
	<-ran // Close while runs are in progress, not before the first
	var cwg sync.WaitGroup
	closeErrs := make(chan error, 3)
	for i := 0; i < 3; i++ { // concurrent Close
		cwg.Add(1)
		go func() { defer cwg.Done(); closeErrs <- m.Close() }()
	}
	cwg.Wait()
	close(closeErrs)
	for err := range closeErrs {
		require.NoError(t, err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.ErrorIs(t, err, serving.ErrClosed, "a request either completes or gets ErrClosed")
	}
	require.Equal(t, before, LiveSessions())
	_, err = m.Predict(context.Background(), map[string]serving.Tensor{"x": x})
	require.ErrorIs(t, err, serving.ErrClosed)
}

func TestCancelledContext(t *testing.T) {
	m := load(t, "mlp", Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := m.Predict(ctx, map[string]serving.Tensor{"x": f32([]int64{1, 16}, seq(16, 1)...)})
	require.ErrorIs(t, err, context.Canceled)
}

func TestZeroRows(t *testing.T) {
	m := load(t, "mlp", Options{})
	out, err := m.Predict(context.Background(), map[string]serving.Tensor{"x": f32([]int64{0, 16})})
	require.NoError(t, err)
	require.Equal(t, []int64{0, 4}, out["y"].Tensor.Shape)
	require.Empty(t, out["y"].Tensor.Data)

	b, err := serving.NewBatcher(m, serving.BatcherOptions{KeepModelOpen: true})
	require.NoError(t, err)
	defer b.Close()
	got, err := b.Predict(context.Background(), map[string]serving.Tensor{"x": f32([]int64{0, 16})})
	require.NoError(t, err, "a 0-row request behaves the same through the batcher")
	require.Equal(t, out["y"].Tensor.Shape, got["y"].Tensor.Shape)
	require.Empty(t, got["y"].Tensor.Data)
	require.Equal(t, uint64(0), b.Stats().Rows)
}

func TestCancelTerminatesRunAndModelStaysUsable(t *testing.T) {
	m := load(t, benchModel, Options{})
	const rows = 200_000 // a run of a few hundred milliseconds
	big := map[string]serving.Tensor{"x": serving.NewTensor([]int64{rows, 64}, make([]float32, rows*64))}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	_, err := m.Predict(ctx, big)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, "run terminated")

	// The terminated run's options are reused with the flag cleared: later
	// runs under live contexts complete.
	one := map[string]serving.Tensor{"x": serving.NewTensor([]int64{1, 64}, randomFloats(64))}
	want, err := m.Predict(context.Background(), one)
	require.NoError(t, err)
	for i := 0; i < 20; i++ {
		live, stop := context.WithCancel(context.Background())
		got, err := m.Predict(live, one)
		stop()
		require.NoError(t, err)
		require.Equal(t, want["y"].Tensor.Data, got["y"].Tensor.Data)
	}
}

// TestWarmUpSizesAndInputs loads a model whose axis must be at least 2
// long (reflect padding): the default warm-up (1 on dynamic axes) fails the
// load, WarmUpDims or WarmUpInputs make it pass, and bad warm-up options
// are refused with errors naming them.
func TestWarmUpSizesAndInputs(t *testing.T) {
	ctx := context.Background()
	_, err := Load(ctx, testModel("reflect_pad"), Options{WarmUp: true})
	require.Error(t, err, "one-long axis cannot be reflect-padded")
	require.ErrorContains(t, err, "warm-up")

	m, err := Load(ctx, testModel("reflect_pad"), Options{WarmUp: true, WarmUpDims: map[string]int64{"len": 3}})
	require.NoError(t, err)
	require.NoError(t, m.Close())

	x := serving.NewTensor([]int64{2, 2}, []float32{1, 2, 3, 4})
	m, err = Load(ctx, testModel("reflect_pad"), Options{WarmUp: true, WarmUpInputs: map[string]serving.Tensor{"x": x}})
	require.NoError(t, err)
	out, err := m.Predict(ctx, map[string]serving.Tensor{"x": x})
	require.NoError(t, err)
	require.Equal(t, []float32{2, 1, 2, 1, 4, 3, 4, 3}, out["y"].Tensor.Data)
	require.NoError(t, m.Close())

	_, err = Load(ctx, testModel("reflect_pad"), Options{WarmUp: true, WarmUpInputs: map[string]serving.Tensor{"z": x}})
	require.ErrorContains(t, err, `WarmUpInputs names "z"`)
	_, err = Load(ctx, testModel("reflect_pad"), Options{WarmUp: true, WarmUpDims: map[string]int64{"len": -2}})
	require.ErrorContains(t, err, `WarmUpDims["len"] is -2`)
}

// TestVersionlessModelReadsZero checks that a file recording no model
// version reports Version 0, not ONNX Runtime's MaxInt64.
func TestVersionlessModelReadsZero(t *testing.T) {
	data, err := os.ReadFile(testModel("mlp"))
	require.NoError(t, err)
	var mp onnxpb.ModelProto
	require.NoError(t, proto.Unmarshal(data, &mp))
	require.Equal(t, int64(1), mp.GetModelVersion())
	mp.ModelVersion = nil
	data, err = proto.Marshal(&mp)
	require.NoError(t, err)
	m, err := LoadBytes(context.Background(), data, Options{})
	require.NoError(t, err)
	defer m.Close()
	require.Equal(t, int64(0), m.Info().Version)
	require.Equal(t, int64(1), load(t, "mlp", Options{}).Info().Version)
}

// TestBatchabilityRules checks which rule decides Info.Batchable on models
// as converters export them: equal axis names, a structure that cannot
// batch, first axes with fresh names decided by the probe either way, the
// probe falling back to the names when it cannot run, and the option
// forcing the decision.
func TestBatchabilityRules(t *testing.T) {
	cases := []struct {
		model     string
		opts      Options
		batchable bool
		rule      string
		reason    string
	}{
		{model: "mlp", batchable: true, rule: RuleNames, reason: `every named first axis is "batch"`},
		{model: "fixed_batch", batchable: false, rule: RuleStructure, reason: "fixed first axis"},
		{model: "conv_dyn", batchable: true, rule: RuleProbe, reason: "rows run together equal rows run alone"},
		{model: "center_rows", batchable: false, rule: RuleProbe, reason: "the model mixes rows"},
		{model: "conv_dyn", opts: Options{WarmUpInputs: map[string]serving.Tensor{"x": f32([]int64{1, 2, 1, 1}, 0, 0)}},
			batchable: false, rule: RuleNames, reason: "probe could not run"},
		{model: "center_rows", opts: Options{Batching: BatchAlways}, batchable: true, rule: RuleOption, reason: "BatchAlways"},
		{model: "mlp", opts: Options{Batching: BatchNever}, batchable: false, rule: RuleOption, reason: "BatchNever"},
		{model: "fixed_batch", opts: Options{Batching: BatchAlways}, batchable: false, rule: RuleStructure, reason: "fixed first axis"},
	}
	for _, c := range cases {
		t.Run(c.model+"/"+c.rule, func(t *testing.T) {
			info := load(t, c.model, c.opts).Info()
			require.Equal(t, c.batchable, info.Batchable, info.BatchReason)
			require.Equal(t, c.rule, info.BatchRule)
			require.Contains(t, info.BatchReason, c.reason)
		})
	}
	_, err := Load(context.Background(), testModel("mlp"), Options{Batching: Batching(7)})
	require.ErrorContains(t, err, "unknown Batching 7")
}
