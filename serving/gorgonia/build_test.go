package gorgonia

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/quiverml/quiver/internal/onnxpb"
	"github.com/quiverml/quiver/serving"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestBuildRunsOnTapeMachine builds the MLP into a graph of the test's own
// and runs it on gorgonia's TapeMachine.
func TestBuildRunsOnTapeMachine(t *testing.T) {
	data, err := os.ReadFile(testModel("mlp"))
	require.NoError(t, err)
	g, err := Parse(data)
	require.NoError(t, err)
	require.Equal(t, []string{"w0", "b0", "w1", "b1"}, g.ParamNames())

	eg := G.NewGraph()
	inputs, err := g.NewInputs(eg, map[string][]int{"x": {3, 16}})
	require.NoError(t, err)
	built, err := g.Build(eg, inputs)
	require.NoError(t, err)
	names := make([]string, len(built.Params))
	for i, p := range built.Params {
		names[i] = p.Name()
		require.Same(t, g.Initializer(p.Name()), p.Value(), "params are bound to the graph's initializers")
	}
	require.Equal(t, g.ParamNames(), names)

	x := randomFloats(5, 3*16)
	vm := G.NewTapeMachine(eg)
	defer vm.Close()
	require.NoError(t, G.Let(inputs["x"], tensor.New(tensor.WithShape(3, 16), tensor.WithBacking(x))))
	require.NoError(t, vm.RunAll())
	y := built.Outputs["y"].Value().(*tensor.Dense)
	require.Equal(t, tensor.Shape{3, 4}, y.Shape())
	require.InDeltaSlice(t, mlpReference(t, x, 3), y.Float32s(), 1e-5)
}

func TestBuildChecksInputs(t *testing.T) {
	data, err := os.ReadFile(testModel("mlp"))
	require.NoError(t, err)
	g, err := Parse(data)
	require.NoError(t, err)
	eg := G.NewGraph()
	_, err = g.NewInputs(eg, map[string][]int{"x": {3, 15}})
	require.EqualError(t, err, `serving: input "x": got shape [3 15], want shape [-1 16]`)
	_, err = g.Build(eg, map[string]*G.Node{})
	require.EqualError(t, err, `serving: input "x": got no tensor, want float32 [-1 16]`)
	x64 := G.NewMatrix(eg, tensor.Float64, G.WithShape(2, 16), G.WithName("x"))
	_, err = g.Build(eg, map[string]*G.Node{"x": x64})
	require.EqualError(t, err, `serving: input "x": got float64, want float32`)
	other := G.NewMatrix(G.NewGraph(), tensor.Float32, G.WithShape(2, 16), G.WithName("x"))
	_, err = g.Build(eg, map[string]*G.Node{"x": other})
	require.ErrorContains(t, err, "a node of another graph")
}

// gradModel is a float64 model through every differentiable operator.
func gradModel(t *testing.T) []byte {
	rng := rand.New(rand.NewPCG(3, 4))
	f64 := func(name string, dims ...int64) *onnxpb.TensorProto {
		n := 1
		for _, d := range dims {
			n *= int(d)
		}
		v := make([]float64, n)
		for i := range v {
			v[i] = rng.NormFloat64()
		}
		return &onnxpb.TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(int32(onnxpb.TensorProto_DOUBLE)), DoubleData: v}
	}
	i64 := func(name string, v ...int64) *onnxpb.TensorProto {
		return &onnxpb.TensorProto{Name: proto.String(name), Dims: []int64{int64(len(v))}, DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Int64Data: v}
	}
	node := func(op string, in []string, out string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
		return &onnxpb.NodeProto{OpType: proto.String(op), Input: in, Output: []string{out}, Attribute: attrs}
	}
	dv := f64("dv", 1, 5)
	for i := range dv.DoubleData {
		dv.DoubleData[i] = 1 + math.Abs(dv.DoubleData[i])
	}
	g := &onnxpb.GraphProto{
		Name: proto.String("grad"),
		Node: []*onnxpb.NodeProto{
			node("Gemm", []string{"x", "W1", "c1"}, "h", attrI("transB", 1), attrF("alpha", 0.7), attrF("beta", 1.3)),
			node("LeakyRelu", []string{"h"}, "a", attrF("alpha", 0.1)),
			node("Sigmoid", []string{"a"}, "s"),
			node("Div", []string{"s", "dv"}, "d"),
			node("Tanh", []string{"d"}, "tt"),
			node("Sub", []string{"tt", "sb"}, "u"),
			node("Mul", []string{"u", "mv"}, "m"),
			node("Add", []string{"m", "av"}, "ad"),
			node("Concat", []string{"ad", "u"}, "cat", attrI("axis", 1)),
			node("Transpose", []string{"cat"}, "tr"),
			node("Reshape", []string{"tr", "shape"}, "rs"),
			node("Gather", []string{"E", "ids"}, "emb"),
			node("Concat", []string{"rs", "emb"}, "cc", attrI("axis", 1)),
			node("Flatten", []string{"cc"}, "fl"),
			node("LogSoftmax", []string{"fl"}, "ls"),
			node("Identity", []string{"ls"}, "id"),
			node("Dropout", []string{"id"}, "dr"),
			node("MatMul", []string{"dr", "W2"}, "mm"),
			node("Softmax", []string{"mm"}, "sm"),
			node("Relu", []string{"mm"}, "rl"),
			node("Add", []string{"sm", "rl"}, "y"),
		},
		Initializer: []*onnxpb.TensorProto{f64("W1", 5, 4), f64("c1", 5), dv, f64("sb", 5), f64("mv", 3, 1), f64("av", 5),
			f64("E", 6, 2), f64("W2", 12, 4), i64("shape", 3, 10), i64("ids", 0, 5, 2)},
		Input:  []*onnxpb.ValueInfoProto{onnxpb.TensorInfo("x", onnxpb.TensorProto_DOUBLE, 3, 4)},
		Output: []*onnxpb.ValueInfoProto{onnxpb.TensorInfo("y", onnxpb.TensorProto_DOUBLE, 3, 4)},
	}
	data, err := proto.Marshal(onnxpb.Model(g, 1, nil))
	require.NoError(t, err)
	return data
}

// TestGradientsMatchFiniteDifferences differentiates a model built from
// ONNX with gorgonia.Grad and checks every parameter's gradient against
// central differences of the same model run by this engine.
func TestGradientsMatchFiniteDifferences(t *testing.T) {
	g, err := Parse(gradModel(t))
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(9, 9))
	x := make([]float64, 12)
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	r := make([]float64, 12)
	for i := range r {
		r[i] = rng.NormFloat64()
	}

	// cost = sum(y * r), differentiated symbolically.
	eg := G.NewGraph()
	inputs, err := g.NewInputs(eg, map[string][]int{"x": {3, 4}})
	require.NoError(t, err)
	built, err := g.Build(eg, inputs)
	require.NoError(t, err)
	require.Len(t, built.Params, 8)
	rn := G.NewMatrix(eg, tensor.Float64, G.WithShape(3, 4), G.WithName("r"), G.WithValue(tensor.New(tensor.WithShape(3, 4), tensor.WithBacking(r))))
	cost := G.Must(G.Sum(G.Must(G.HadamardProd(built.Outputs["y"], rn))))
	_, err = G.Grad(cost, built.Params...)
	require.NoError(t, err)
	vm := G.NewTapeMachine(eg, G.BindDualValues(built.Params...))
	defer vm.Close()
	require.NoError(t, G.Let(inputs["x"], tensor.New(tensor.WithShape(3, 4), tensor.WithBacking(append([]float64(nil), x...)))))
	require.NoError(t, vm.RunAll())

	// The same cost, run by the engine's machine on the shared parameters.
	mc, err := g.compile("k", [][]int{{3, 4}}, 1<<20)
	require.NoError(t, err)
	info := g.Info()
	evalCost := func() float64 {
		out, err := mc.run(context.Background(), &info, map[string]serving.Tensor{"x": {Shape: []int64{3, 4}, Data: x}})
		require.NoError(t, err)
		y := out["y"].Tensor.Data.([]float64)
		s := 0.0
		for i := range y {
			s += y[i] * r[i]
		}
		return s
	}
	const eps = 1e-6
	for _, p := range built.Params {
		gv, err := p.Grad()
		require.NoError(t, err, p.Name())
		grad := gv.(*tensor.Dense).Float64s()
		w := g.Initializer(p.Name()).Float64s()
		for i := range w {
			orig := w[i]
			w[i] = orig + eps
			up := evalCost()
			w[i] = orig - eps
			down := evalCost()
			w[i] = orig
			want := (up - down) / (2 * eps)
			require.InDelta(t, want, grad[i], 1e-6+1e-5*math.Abs(want), "d cost / d %s[%d]", p.Name(), i)
		}
	}
}
