package gorgonia

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/quiverml/quiver/internal/onnxpb"
	"github.com/quiverml/quiver/serving"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	G "gorgonia.org/gorgonia"
)

func TestUnsupportedModelsAreTypedErrorsAtLoad(t *testing.T) {
	x4 := in(sh(1, 1, 4, 4), make([]float32, 16)...)
	cases := []struct {
		name  string
		model []byte
		node  string
		op    string
		what  string
	}{
		{"unknown operator", opModel(0, "Erf", nil, 1, in(sh(2), 1, 2)), "n", "Erf",
			"operator Erf not supported; supported: Add, AveragePool, BatchNormalization, Concat, Constant, Conv, Div, Dropout, Flatten, Gather, Gemm, GlobalAveragePool, Identity, LeakyRelu, LogSoftmax, MatMul, MaxPool, Mul, Relu, Reshape, Sigmoid, Softmax, Sub, Tanh, Transpose"},
		{"attribute value", opModel(0, "AveragePool", []*onnxpb.AttributeProto{attrInts("kernel_shape", 2, 2), attrInts("dilations", 2, 2)}, 1, x4),
			"n", "AveragePool", "attribute dilations=[2 2] not supported; supported: 1"},
		{"training mode", opModel(0, "BatchNormalization", []*onnxpb.AttributeProto{attrI("training_mode", 1)}, 1,
			x4, w(sh(1), 1), w(sh(1), 0), w(sh(1), 0), w(sh(1), 1)), "n", "BatchNormalization", "attribute training_mode=1 not supported; supported: 0"},
		{"unknown attribute", opModel(0, "Relu", []*onnxpb.AttributeProto{attrI("foo", 1)}, 1, in(sh(2), 1, 2)), "n", "Relu",
			"attribute foo not supported; supported: none"},
		{"second output", opModel(0, "MaxPool", []*onnxpb.AttributeProto{attrInts("kernel_shape", 2, 2)}, 2, x4), "n", "MaxPool",
			`output 1 ("y1") not supported; supported: the first 1 output(s)`},
		{"three spatial axes", opModel(0, "MaxPool", []*onnxpb.AttributeProto{attrInts("kernel_shape", 1, 1, 1)}, 1, in(sh(1, 1, 1, 1, 1), 1)),
			"n", "MaxPool", "3 spatial axes not supported; supported: 1 or 2"},
		{"integer arithmetic", opModel(0, "Relu", nil, 1, ii(sh(2), 1, 2)), "n", "Relu",
			`input "a0" of element type int64 not supported; supported: float32, float64`},
		{"computed reshape target", opModel(0, "Reshape", nil, 1, in(sh(2), 1, 2), ii(sh(1), 2)), "n", "Reshape",
			`shape "a1" computed by the graph not supported; supported: an initializer or a Constant`},
		{"old opset", opModel(5, "Relu", nil, 1, in(sh(2), 1, 2)), "", "", "opset 5 not supported; supported: 7 to 23"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadBytes(context.Background(), c.model, Options{Name: "m"})
			require.ErrorIs(t, err, ErrUnsupported)
			require.ErrorIs(t, err, serving.ErrModel)
			var ue *UnsupportedError
			require.ErrorAs(t, err, &ue)
			require.Equal(t, c.node, ue.Node)
			require.Equal(t, c.op, ue.Op)
			require.Equal(t, c.what, ue.What)
			require.Equal(t, "m", ue.Model)
			if c.node != "" {
				require.EqualError(t, err, `serving/gorgonia: model "m": node "n" (`+c.op+"): "+c.what)
			} else {
				require.EqualError(t, err, `serving/gorgonia: model "m": `+c.what)
			}
		})
	}
}

func TestUnsupportedDomainAndInputType(t *testing.T) {
	mp := &onnxpb.ModelProto{}
	require.NoError(t, proto.Unmarshal(opModel(0, "Relu", nil, 1, in(sh(2), 1, 2)), mp))
	mp.Graph.Node[0].Domain = proto.String("com.microsoft")
	_, err := ParseModel(mp)
	require.ErrorIs(t, err, ErrUnsupported)
	require.EqualError(t, err, `serving/gorgonia: node "n" (Relu): operator domain "com.microsoft" not supported; supported: the default ONNX domain`)

	require.NoError(t, proto.Unmarshal(opModel(0, "Relu", nil, 1, in(sh(2), 1, 2)), mp))
	mp.Graph.Input[0].Type.GetTensorType().ElemType = proto.Int32(int32(onnxpb.TensorProto_FLOAT16))
	_, err = ParseModel(mp)
	require.ErrorIs(t, err, ErrUnsupported)
	require.EqualError(t, err, `serving/gorgonia: input "a0": element type float16 not supported; supported: float32, float64, int32, int64`)
}

func TestMalformedModels(t *testing.T) {
	good := opModel(0, "Add", nil, 1, in(sh(2), 1, 2), w(sh(2), 3, 4))
	mutate := func(fn func(*onnxpb.ModelProto)) []byte {
		mp := &onnxpb.ModelProto{}
		require.NoError(t, proto.Unmarshal(good, mp))
		fn(mp)
		b, err := proto.Marshal(mp)
		require.NoError(t, err)
		return b
	}
	cases := []struct {
		name string
		data []byte
		msg  string
	}{
		{"empty", nil, "empty model data"},
		{"not protobuf", []byte("this is not an onnx model at all"), "not an ONNX model"},
		{"no graph", mutate(func(mp *onnxpb.ModelProto) { mp.Graph = nil }), "the model has no graph"},
		{"tensor larger than its data", mutate(func(mp *onnxpb.ModelProto) { mp.Graph.Initializer[0].Dims = []int64{1 << 30} }),
			`initializer "a1": dims [1073741824] declare 1073741824 elements, the data holds 8 bytes (2 elements of float32)`},
		{"huge dims", mutate(func(mp *onnxpb.ModelProto) { mp.Graph.Initializer[0].Dims = []int64{1 << 40, 1 << 40} }),
			`initializer "a1": dims [1099511627776 1099511627776] are not a valid shape`},
		{"undefined input", mutate(func(mp *onnxpb.ModelProto) { mp.Graph.Node[0].Input[1] = "nope" }),
			`node "n" (Add): input "nope" is not defined before the node (nodes must be sorted)`},
		{"no outputs", mutate(func(mp *onnxpb.ModelProto) { mp.Graph.Output = nil }), "the model has no outputs"},
		{"wrong input count", mutate(func(mp *onnxpb.ModelProto) { mp.Graph.Node[0].Input = mp.Graph.Node[0].Input[:1] }),
			`node "n" (Add): has 1 inputs, want 2`},
		{"attribute of the wrong type", mutate(func(mp *onnxpb.ModelProto) {
			mp.Graph.Node[0].OpType = proto.String("Concat")
			mp.Graph.Node[0].Attribute = []*onnxpb.AttributeProto{attrF("axis", 1)}
		}), `node "n" (Concat): attribute axis is a FLOAT, want a INT`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadBytes(context.Background(), c.data, Options{})
			require.ErrorIs(t, err, serving.ErrModel)
			require.True(t, strings.HasPrefix(err.Error(), `serving: cannot load model "model": `), err.Error())
			require.NotErrorIs(t, err, ErrUnsupported)
			require.Contains(t, err.Error(), c.msg)
		})
	}
}

func TestBadInputsLeaveTheModelServing(t *testing.T) {
	m := load(t, "ops_pool", Options{})
	good := map[string]serving.Tensor{"x": f32(sh(1, 2, 4, 4), randomFloats(3, 32)...)}
	want := predict(t, m, good)

	cases := []struct {
		name string
		in   map[string]serving.Tensor
		kind error
		msg  string
	}{
		{"rank", map[string]serving.Tensor{"x": f32(sh(2, 16), make([]float32, 32)...)}, serving.ErrShape, "got shape [2 16] (rank 2), want shape [-1 2 -1 -1] (rank 4)"},
		{"fixed axis", map[string]serving.Tensor{"x": f32(sh(1, 3, 2, 2), make([]float32, 12)...)}, serving.ErrShape, "got shape [1 3 2 2], want shape [-1 2 -1 -1]"},
		{"type", map[string]serving.Tensor{"x": serving.NewTensor(sh(1, 2, 1, 1), []float64{1, 2})}, serving.ErrType, "got float64, want float32"},
		{"unknown input", map[string]serving.Tensor{"x": good["x"], "z": good["x"]}, serving.ErrInput, `input "z": got an unknown input`},
		{"missing input", map[string]serving.Tensor{}, serving.ErrInput, `input "x": got no tensor`},
		{"data length", map[string]serving.Tensor{"x": f32(sh(1, 2, 2, 2), 1, 2, 3)}, serving.ErrShape, "got 3 elements for shape [1 2 2 2]"},
		// The dilated 2x2 max pool spans 3 rows: one row is too few.
		{"shape the graph cannot take", map[string]serving.Tensor{"x": f32(sh(1, 2, 1, 8), make([]float32, 16)...)}, serving.ErrShape,
			`got shapes x [1 2 1 8], want shapes every node accepts: serving/gorgonia: node "#0" (MaxPool): kernel [2 2] (dilated to 3) is larger than the padded input along spatial axis 0 (1 + pads 0+0)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := m.Predict(context.Background(), c.in)
			require.ErrorIs(t, err, c.kind)
			var ie *serving.InputError
			require.ErrorAs(t, err, &ie)
			require.Contains(t, err.Error(), c.msg)
			out := predict(t, m, good)
			require.Equal(t, want, out, "the model still serves, with the same results")
		})
	}
	require.Zero(t, m.Stats().Errors, "bad input is not a run error")
}

func TestMachineMemoryBound(t *testing.T) {
	m := load(t, "mlp", Options{MaxMachineBytes: 4096})
	_, err := m.Predict(context.Background(), map[string]serving.Tensor{"x": f32(sh(1, 16), make([]float32, 16)...)})
	require.NoError(t, err, "one row fits in 4 KiB")
	_, err = m.Predict(context.Background(), map[string]serving.Tensor{"x": f32(sh(64, 16), make([]float32, 64*16)...)})
	require.ErrorIs(t, err, serving.ErrTooLarge)
	require.Contains(t, err.Error(), "more than the 4096 allowed (Options.MaxMachineBytes)")
}

func TestCancelledContext(t *testing.T) {
	m := load(t, "mlp", Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := m.Predict(ctx, map[string]serving.Tensor{"x": f32(sh(1, 16), make([]float32, 16)...)})
	require.ErrorIs(t, err, context.Canceled)

	_, err = Load(ctx, testModel("mlp"), Options{})
	require.ErrorIs(t, err, context.Canceled)
}

// TestRunStopsWhenContextEnds cancels the context from inside a run, after
// its first operator, and requires the run to stop with the context's
// error rather than finish.
func TestRunStopsWhenContextEnds(t *testing.T) {
	m := load(t, "mlp", Options{})
	in := map[string]serving.Tensor{"x": f32(sh(1, 16), make([]float32, 16)...)}
	predict(t, m, in) // compile a machine
	mc := m.cache.get(shapeKey(nil, &m.info, in))
	require.NotNil(t, mc)
	ctx, cancel := context.WithCancel(context.Background())
	first := mc.steps[0].op
	mc.steps[0].op = cancelOnRun{first, cancel}
	m.cache.put(mc)
	_, err := m.Predict(ctx, in)
	require.ErrorIs(t, err, context.Canceled)
	require.Contains(t, err.Error(), "run stopped")
}

// cancelOnRun runs an op and cancels a context.
type cancelOnRun struct {
	G.UsePreallocDoer
	cancel context.CancelFunc
}

func (c cancelOnRun) UsePreallocDo(out G.Value, in ...G.Value) (G.Value, error) {
	c.cancel()
	return c.UsePreallocDoer.UsePreallocDo(out, in...)
}

func TestOptionsAreChecked(t *testing.T) {
	data, err := os.ReadFile(testModel("mlp"))
	require.NoError(t, err)
	for _, o := range []Options{{Batching: 7}, {MaxShapes: -1}, {MaxIdle: -1}, {MaxMachineBytes: -1}, {WarmUpDims: map[string]int64{"batch": -1}}} {
		_, err := LoadBytes(context.Background(), data, o)
		require.Error(t, err)
		require.True(t, strings.HasPrefix(err.Error(), "serving/gorgonia: "), err.Error())
	}
	_, err = Load(context.Background(), "/nonexistent/model.onnx", Options{})
	require.True(t, errors.Is(err, serving.ErrModel))
	require.EqualError(t, err, `serving: cannot load model "/nonexistent/model.onnx": open /nonexistent/model.onnx: no such file or directory`)
}
