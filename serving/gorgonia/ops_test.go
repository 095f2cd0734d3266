package gorgonia

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"testing"

	"github.com/quiverml/quiver/internal/onnxpb"
	"github.com/quiverml/quiver/serving"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

// arg is one input of a single-node test model: a graph input, or an
// initializer when init is set.
type arg struct {
	t    serving.Tensor
	init bool
}

func in(shape []int64, vals ...float32) arg  { return arg{t: serving.NewTensor(shape, vals)} }
func w(shape []int64, vals ...float32) arg   { return arg{t: serving.NewTensor(shape, vals), init: true} }
func iw(shape []int64, vals ...int64) arg    { return arg{t: serving.NewTensor(shape, vals), init: true} }
func ii(shape []int64, vals ...int64) arg    { return arg{t: serving.NewTensor(shape, vals)} }
func d64(shape []int64, vals ...float64) arg { return arg{t: serving.NewTensor(shape, vals)} }
func sh(dims ...int64) []int64               { return append([]int64{}, dims...) }
func attrI(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}
func attrF(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}
func attrInts(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}
func attrS(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte(v)}
}

func tensorProto(name string, t serving.Tensor) *onnxpb.TensorProto {
	tp := &onnxpb.TensorProto{Name: proto.String(name), Dims: t.Shape, DataType: proto.Int32(int32(t.ElementType()))}
	switch d := t.Data.(type) {
	case []float32:
		tp.FloatData = d
	case []float64:
		tp.DoubleData = d
	case []int64:
		raw := make([]byte, 8*len(d))
		for i, v := range d {
			binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
		}
		tp.RawData = raw
	}
	return tp
}

// opModel builds a model of one node whose inputs are args (named a0,
// a1, ...; an arg with nil Data is an absent optional input) and whose
// outputs y0, y1, ... have the first arg's element type and no declared
// shape.
func opModel(opset int64, op string, attrs []*onnxpb.AttributeProto, nout int, args ...arg) []byte {
	g := &onnxpb.GraphProto{Name: proto.String("op")}
	node := &onnxpb.NodeProto{OpType: proto.String(op), Name: proto.String("n"), Attribute: attrs}
	var elem onnxpb.TensorProto_DataType
	for i, a := range args {
		name := fmt.Sprintf("a%d", i)
		if a.t.Data == nil {
			name = ""
		} else if a.init {
			g.Initializer = append(g.Initializer, tensorProto(name, a.t))
		} else {
			dims := make([]any, len(a.t.Shape))
			for k, d := range a.t.Shape {
				dims[k] = d
			}
			g.Input = append(g.Input, onnxpb.TensorInfo(name, onnxpb.TensorProto_DataType(a.t.ElementType()), dims...))
		}
		if i == 0 {
			elem = onnxpb.TensorProto_DataType(a.t.ElementType())
		}
		node.Input = append(node.Input, name)
	}
	for k := 0; k < nout; k++ {
		name := fmt.Sprintf("y%d", k)
		node.Output = append(node.Output, name)
		g.Output = append(g.Output, &onnxpb.ValueInfoProto{Name: proto.String(name),
			Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(elem))}}}})
	}
	g.Node = []*onnxpb.NodeProto{node}
	m := onnxpb.Model(g, 1, nil)
	if opset != 0 {
		m.OpsetImport[0].Version = proto.Int64(opset)
	}
	data, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return data
}

// runOp runs a one-node model and returns its first output.
func runOp(t *testing.T, opset int64, op string, attrs []*onnxpb.AttributeProto, args ...arg) (serving.Tensor, error) {
	t.Helper()
	m, err := LoadBytes(context.Background(), opModel(opset, op, attrs, 1, args...), Options{})
	require.NoError(t, err)
	defer m.Close()
	feed := map[string]serving.Tensor{}
	for i, a := range args {
		if a.t.Data != nil && !a.init {
			feed[fmt.Sprintf("a%d", i)] = a.t
		}
	}
	out, err := m.Predict(context.Background(), feed)
	if err != nil {
		return serving.Tensor{}, err
	}
	return out["y0"].Tensor, nil
}

var ln2, ln3 = float32(math.Log(2)), float32(math.Log(3))

// TestOperators checks each operator on small inputs whose results are
// worked out by hand in the comments.
func TestOperators(t *testing.T) {
	cases := []struct {
		name  string
		opset int64
		op    string
		attrs []*onnxpb.AttributeProto
		args  []arg
		shape []int64
		want  any
	}{
		// A·op(B) = [[1+3, 2], [4+6, 5]]; x2 = [[8 4] [20 10]]; + 0.5*[1 -1].
		{"Gemm transB alpha beta", 0, "Gemm", []*onnxpb.AttributeProto{attrI("transB", 1), attrF("alpha", 2), attrF("beta", 0.5)},
			[]arg{in(sh(2, 3), 1, 2, 3, 4, 5, 6), w(sh(2, 3), 1, 0, 1, 0, 1, 0), w(sh(2), 1, -1)}, sh(2, 2), []float32{8.5, 3.5, 20.5, 9.5}},
		{"Gemm transA", 0, "Gemm", []*onnxpb.AttributeProto{attrI("transA", 1)},
			[]arg{in(sh(3, 2), 1, 4, 2, 5, 3, 6), w(sh(3, 2), 1, 0, 0, 1, 1, 0)}, sh(2, 2), []float32{4, 2, 10, 5}},
		{"Gemm C as a column", 0, "Gemm", nil,
			[]arg{in(sh(2, 1), 1, 2), w(sh(1, 2), 3, 4), w(sh(2, 1), 10, 20)}, sh(2, 2), []float32{13, 14, 26, 28}},
		{"MatMul matrix vector", 0, "MatMul", nil, []arg{in(sh(2, 2), 1, 2, 3, 4), w(sh(2), 1, 1)}, sh(2), []float32{3, 7}},
		{"MatMul vector matrix", 0, "MatMul", nil, []arg{in(sh(2), 1, 1), w(sh(2, 2), 1, 2, 3, 4)}, sh(2), []float32{4, 6}},
		{"MatMul vector vector", 0, "MatMul", nil, []arg{in(sh(3), 1, 2, 3), w(sh(3), 4, 5, 6)}, sh(), []float32{32}},
		// [I, 2I] times [[1 2] [3 4]].
		{"MatMul stack by matrix", 0, "MatMul", nil, []arg{in(sh(2, 2, 2), 1, 0, 0, 1, 2, 0, 0, 2), w(sh(2, 2), 1, 2, 3, 4)},
			sh(2, 2, 2), []float32{1, 2, 3, 4, 2, 4, 6, 8}},
		// [[1 2] [3 4]] times the columns [1 0] and [0 1].
		{"MatMul broadcast stacks", 0, "MatMul", nil, []arg{in(sh(1, 2, 2), 1, 2, 3, 4), w(sh(2, 2, 1), 1, 0, 0, 1)},
			sh(2, 2, 1), []float32{1, 3, 2, 4}},
		{"Add row", 0, "Add", nil, []arg{in(sh(2, 3), 1, 2, 3, 4, 5, 6), w(sh(3), 10, 20, 30)}, sh(2, 3), []float32{11, 22, 33, 14, 25, 36}},
		{"Add both broadcast", 0, "Add", nil, []arg{in(sh(2, 1), 1, 2), w(sh(1, 3), 10, 20, 30)}, sh(2, 3), []float32{11, 21, 31, 12, 22, 32}},
		{"Sub column", 0, "Sub", nil, []arg{in(sh(2, 3), 1, 2, 3, 4, 5, 6), w(sh(2, 1), 1, 2)}, sh(2, 3), []float32{0, 1, 2, 2, 3, 4}},
		{"Sub lower rank first", 0, "Sub", nil, []arg{w(sh(3), 10, 20, 30), in(sh(2, 3), 1, 2, 3, 4, 5, 6)}, sh(2, 3), []float32{9, 18, 27, 6, 15, 24}},
		{"Mul scalar", 0, "Mul", nil, []arg{in(sh(2, 2), 1, 2, 3, 4), w(sh(), 2)}, sh(2, 2), []float32{2, 4, 6, 8}},
		{"Div", 0, "Div", nil, []arg{in(sh(2, 3), 1, 2, 3, 4, 5, 6), w(sh(1, 3), 1, 2, 4)}, sh(2, 3), []float32{1, 1, 0.75, 4, 2.5, 1.5}},
		{"Add float64", 0, "Add", nil, []arg{d64(sh(2), 0.1, 0.2), {t: serving.NewTensor(sh(1), []float64{1e-9}), init: true}}, sh(2), []float64{0.1 + 1e-9, 0.2 + 1e-9}},
		{"Relu", 0, "Relu", nil, []arg{in(sh(3), -1, 0, 2)}, sh(3), []float32{0, 0, 2}},
		{"LeakyRelu", 0, "LeakyRelu", []*onnxpb.AttributeProto{attrF("alpha", 0.1)}, []arg{in(sh(2), -2, 3)}, sh(2), []float32{-0.2, 3}},
		{"LeakyRelu default alpha", 0, "LeakyRelu", nil, []arg{in(sh(1), -100)}, sh(1), []float32{-1}},
		// 1/(1+e^-ln3) = 3/4; 1/(1+e^ln3) = 1/4.
		{"Sigmoid", 0, "Sigmoid", nil, []arg{in(sh(3), 0, ln3, -ln3)}, sh(3), []float32{0.5, 0.75, 0.25}},
		// tanh(ln2) = (2 - 1/2)/(2 + 1/2).
		{"Tanh", 0, "Tanh", nil, []arg{in(sh(2), 0, ln2)}, sh(2), []float32{0, 0.6}},
		// e^[0 ln2 ln3] = [1 2 3].
		{"Softmax last axis", 0, "Softmax", nil, []arg{in(sh(2, 3), 0, ln2, ln3, 5, 5, 5)}, sh(2, 3), []float32{1. / 6, 2. / 6, 3. / 6, 1. / 3, 1. / 3, 1. / 3}},
		{"Softmax axis 0 opset 13", 13, "Softmax", []*onnxpb.AttributeProto{attrI("axis", 0)}, []arg{in(sh(2, 2), 0, ln2, 0, 0)}, sh(2, 2), []float32{0.5, 2. / 3, 0.5, 1. / 3}},
		{"Softmax axis 0 opset 11 flattens", 11, "Softmax", []*onnxpb.AttributeProto{attrI("axis", 0)}, []arg{in(sh(2, 2), 0, ln2, 0, 0)}, sh(2, 2), []float32{0.2, 0.4, 0.2, 0.2}},
		{"Softmax default axis opset 11", 11, "Softmax", nil, []arg{in(sh(1, 2, 2), 0, ln2, 0, 0)}, sh(1, 2, 2), []float32{0.2, 0.4, 0.2, 0.2}},
		{"LogSoftmax", 0, "LogSoftmax", nil, []arg{in(sh(1, 3), 0, ln2, ln3)}, sh(1, 3), []float32{-float32(math.Log(6)), ln2 - float32(math.Log(6)), -ln2}},
		{"Reshape -1", 0, "Reshape", nil, []arg{in(sh(2, 3), 1, 2, 3, 4, 5, 6), iw(sh(2), 3, -1)}, sh(3, 2), []float32{1, 2, 3, 4, 5, 6}},
		{"Reshape 0 copies", 0, "Reshape", nil, []arg{in(sh(2, 1, 3), 1, 2, 3, 4, 5, 6), iw(sh(2), 0, 3)}, sh(2, 3), []float32{1, 2, 3, 4, 5, 6}},
		{"Flatten axis 0", 0, "Flatten", []*onnxpb.AttributeProto{attrI("axis", 0)}, []arg{in(sh(2, 2), 1, 2, 3, 4)}, sh(1, 4), []float32{1, 2, 3, 4}},
		{"Flatten axis -1", 0, "Flatten", []*onnxpb.AttributeProto{attrI("axis", -1)}, []arg{in(sh(2, 1, 2), 1, 2, 3, 4)}, sh(2, 2), []float32{1, 2, 3, 4}},
		{"Concat axis 1", 0, "Concat", []*onnxpb.AttributeProto{attrI("axis", 1)}, []arg{in(sh(2, 1), 1, 2), w(sh(2, 2), 3, 4, 5, 6)}, sh(2, 3), []float32{1, 3, 4, 2, 5, 6}},
		{"Concat axis -2", 0, "Concat", []*onnxpb.AttributeProto{attrI("axis", -2)}, []arg{in(sh(1, 2), 1, 2), w(sh(1, 2), 3, 4)}, sh(2, 2), []float32{1, 2, 3, 4}},
		{"Transpose default", 0, "Transpose", nil, []arg{in(sh(2, 3), 1, 2, 3, 4, 5, 6)}, sh(3, 2), []float32{1, 4, 2, 5, 3, 6}},
		{"Transpose perm", 0, "Transpose", []*onnxpb.AttributeProto{attrInts("perm", 1, 0, 2)}, []arg{in(sh(2, 2, 2), 1, 2, 3, 4, 5, 6, 7, 8)}, sh(2, 2, 2), []float32{1, 2, 5, 6, 3, 4, 7, 8}},
		{"Transpose int64", 0, "Transpose", nil, []arg{ii(sh(2, 2), 1, 2, 3, 4)}, sh(2, 2), []int64{1, 3, 2, 4}},
		{"Identity", 0, "Identity", nil, []arg{in(sh(2), 7, 8)}, sh(2), []float32{7, 8}},
		{"Dropout is identity", 0, "Dropout", nil, []arg{in(sh(2), 7, 8), w(sh(), 0.5)}, sh(2), []float32{7, 8}},
		{"Gather embedding", 0, "Gather", nil, []arg{w(sh(3, 2), 1, 2, 3, 4, 5, 6), ii(sh(2, 2), 2, 0, -1, 1)}, sh(2, 2, 2), []float32{5, 6, 1, 2, 5, 6, 3, 4}},
		{"Gather axis 1", 0, "Gather", []*onnxpb.AttributeProto{attrI("axis", 1)}, []arg{in(sh(2, 3), 1, 2, 3, 4, 5, 6), iw(sh(2), 2, 0)}, sh(2, 2), []float32{3, 1, 6, 4}},
		// ch0: (x-1)/2; ch1: (x-3)*2+1.
		{"BatchNormalization", 0, "BatchNormalization", []*onnxpb.AttributeProto{attrF("epsilon", 0)},
			[]arg{in(sh(1, 2, 1, 2), 1, 2, 3, 4), w(sh(2), 1, 2), w(sh(2), 0, 1), w(sh(2), 1, 3), w(sh(2), 4, 1)}, sh(1, 2, 1, 2), []float32{0, 0.5, 1, 3}},
		{"BatchNormalization 2-D", 0, "BatchNormalization", []*onnxpb.AttributeProto{attrF("epsilon", 0)},
			[]arg{in(sh(2, 2), 1, 3, 3, 4), w(sh(2), 1, 2), w(sh(2), 0, 1), w(sh(2), 1, 3), w(sh(2), 4, 1)}, sh(2, 2), []float32{0, 1, 1, 3}},
		// 2x2 sums of 1..9 laid out 3x3, plus the bias.
		{"Conv", 0, "Conv", nil, []arg{in(sh(1, 1, 3, 3), 1, 2, 3, 4, 5, 6, 7, 8, 9), w(sh(1, 1, 2, 2), 1, 1, 1, 1), w(sh(1), 1)},
			sh(1, 1, 2, 2), []float32{13, 17, 25, 29}},
		// Windows at -1 and 1 along each axis: {1}, {2 3}, {4 7}, {5 6 8 9}.
		{"Conv pads strides", 0, "Conv", []*onnxpb.AttributeProto{attrInts("pads", 1, 1, 1, 1), attrInts("strides", 2, 2)},
			[]arg{in(sh(1, 1, 3, 3), 1, 2, 3, 4, 5, 6, 7, 8, 9), w(sh(1, 1, 2, 2), 1, 1, 1, 1)}, sh(1, 1, 2, 2), []float32{1, 5, 11, 28}},
		{"Conv dilations", 0, "Conv", []*onnxpb.AttributeProto{attrInts("dilations", 2, 2)},
			[]arg{in(sh(1, 1, 3, 3), 1, 2, 3, 4, 5, 6, 7, 8, 9), w(sh(1, 1, 2, 2), 1, 1, 1, 1)}, sh(1, 1, 1, 1), []float32{20}},
		{"Conv groups", 0, "Conv", []*onnxpb.AttributeProto{attrI("group", 2)},
			[]arg{in(sh(1, 2, 1, 1), 1, 2), w(sh(2, 1, 1, 1), 3, 4)}, sh(1, 2, 1, 1), []float32{3, 8}},
		{"Conv asymmetric pads", 0, "Conv", []*onnxpb.AttributeProto{attrInts("pads", 0, 1, 0, 0)},
			[]arg{in(sh(1, 1, 1, 3), 1, 2, 3), w(sh(1, 1, 1, 2), 1, 1)}, sh(1, 1, 1, 3), []float32{1, 3, 5}},
		{"Conv SAME_UPPER", 0, "Conv", []*onnxpb.AttributeProto{attrS("auto_pad", "SAME_UPPER")},
			[]arg{in(sh(1, 1, 1, 4), 1, 2, 3, 4), w(sh(1, 1, 1, 2), 1, 1)}, sh(1, 1, 1, 4), []float32{3, 5, 7, 4}},
		{"Conv SAME_LOWER", 0, "Conv", []*onnxpb.AttributeProto{attrS("auto_pad", "SAME_LOWER")},
			[]arg{in(sh(1, 1, 1, 4), 1, 2, 3, 4), w(sh(1, 1, 1, 2), 1, 1)}, sh(1, 1, 1, 4), []float32{1, 3, 5, 7}},
		{"Conv 1-D", 0, "Conv", nil, []arg{in(sh(1, 1, 4), 1, 2, 3, 4), w(sh(1, 1, 2), 1, -1)}, sh(1, 1, 3), []float32{-1, -1, -1}},
		{"MaxPool", 0, "MaxPool", []*onnxpb.AttributeProto{attrInts("kernel_shape", 2, 2)},
			[]arg{in(sh(1, 1, 3, 3), 1, 2, 3, 4, 5, 6, 7, 8, 9)}, sh(1, 1, 2, 2), []float32{5, 6, 8, 9}},
		{"MaxPool pads strides", 0, "MaxPool", []*onnxpb.AttributeProto{attrInts("kernel_shape", 2, 2), attrInts("pads", 1, 1, 1, 1), attrInts("strides", 2, 2)},
			[]arg{in(sh(1, 1, 3, 3), 1, 2, 3, 4, 5, 6, 7, 8, 9)}, sh(1, 1, 2, 2), []float32{1, 3, 7, 9}},
		{"MaxPool floor", 0, "MaxPool", []*onnxpb.AttributeProto{attrInts("kernel_shape", 2), attrInts("strides", 2)},
			[]arg{in(sh(1, 1, 5), 1, 2, 3, 4, 5)}, sh(1, 1, 2), []float32{2, 4}},
		{"MaxPool ceil_mode", 0, "MaxPool", []*onnxpb.AttributeProto{attrInts("kernel_shape", 2), attrInts("strides", 2), attrI("ceil_mode", 1)},
			[]arg{in(sh(1, 1, 5), 1, 2, 3, 4, 5)}, sh(1, 1, 3), []float32{2, 4, 5}},
		{"MaxPool dilations", 0, "MaxPool", []*onnxpb.AttributeProto{attrInts("kernel_shape", 2), attrInts("dilations", 2)},
			[]arg{in(sh(1, 1, 5), 1, 5, 3, 4, 2)}, sh(1, 1, 3), []float32{3, 5, 3}},
		// Windows [-1 0] [0 1] [1 2] [2 3] [3 4] over 1 2 3 4 padded by one.
		{"AveragePool excluding pads", 0, "AveragePool", []*onnxpb.AttributeProto{attrInts("kernel_shape", 2), attrInts("pads", 1, 1), attrInts("strides", 1)},
			[]arg{in(sh(1, 1, 4), 1, 2, 3, 4)}, sh(1, 1, 5), []float32{1, 1.5, 2.5, 3.5, 4}},
		{"AveragePool including pads", 0, "AveragePool", []*onnxpb.AttributeProto{attrInts("kernel_shape", 2), attrInts("pads", 1, 1), attrI("count_include_pad", 1)},
			[]arg{in(sh(1, 1, 4), 1, 2, 3, 4)}, sh(1, 1, 5), []float32{0.5, 1.5, 2.5, 3.5, 2}},
		{"GlobalAveragePool", 0, "GlobalAveragePool", nil, []arg{in(sh(1, 2, 2, 2), 1, 2, 3, 4, 5, 6, 7, 8)}, sh(1, 2, 1, 1), []float32{2.5, 6.5}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := runOp(t, c.opset, c.op, c.attrs, c.args...)
			require.NoError(t, err)
			require.Equal(t, c.shape, got.Shape)
			switch want := c.want.(type) {
			case []float32:
				require.InDeltaSlice(t, want, got.Data, 1e-6)
			case []float64:
				require.InDeltaSlice(t, want, got.Data, 1e-15)
			default:
				require.Equal(t, want, got.Data)
			}
		})
	}
}

func TestConstantOperator(t *testing.T) {
	g := &onnxpb.GraphProto{
		Node: []*onnxpb.NodeProto{
			{OpType: proto.String("Constant"), Output: []string{"c"}, Attribute: []*onnxpb.AttributeProto{
				{Name: proto.String("value_floats"), Type: onnxpb.AttributeProto_FLOATS.Enum(), Floats: []float32{1, 2}}}},
			{OpType: proto.String("Constant"), Output: []string{"shape"}, Attribute: []*onnxpb.AttributeProto{
				{Name: proto.String("value_ints"), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: []int64{-1, 2}}}},
			{OpType: proto.String("Add"), Input: []string{"x", "c"}, Output: []string{"s"}},
			{OpType: proto.String("Reshape"), Input: []string{"s", "shape"}, Output: []string{"y"}},
		},
		Input:  []*onnxpb.ValueInfoProto{onnxpb.TensorInfo("x", onnxpb.TensorProto_FLOAT, "n", 2)},
		Output: []*onnxpb.ValueInfoProto{onnxpb.TensorInfo("y", onnxpb.TensorProto_FLOAT, "n", 2)},
	}
	data, err := proto.Marshal(onnxpb.Model(g, 1, nil))
	require.NoError(t, err)
	m, err := LoadBytes(context.Background(), data, Options{})
	require.NoError(t, err)
	defer m.Close()
	require.Equal(t, []string{"x"}, []string{m.Info().Inputs[0].Name}, "a Constant is not an input")
	out := predict(t, m, map[string]serving.Tensor{"x": f32(sh(2, 2), 10, 20, 30, 40)})
	require.Equal(t, []float32{11, 22, 31, 42}, out["y"].Tensor.Data)
}

func TestGatherIndexOutOfRange(t *testing.T) {
	_, err := runOp(t, 0, "Gather", nil, w(sh(3, 2), 1, 2, 3, 4, 5, 6), ii(sh(1), 3))
	var re *serving.RunError
	require.ErrorAs(t, err, &re)
	require.ErrorIs(t, err, serving.ErrInput)
	require.Contains(t, err.Error(), "index 3 out of range for an axis of size 3, want -3 to 2")
	_, err = runOp(t, 0, "Gather", nil, w(sh(3, 2), 1, 2, 3, 4, 5, 6), ii(sh(1), -4))
	require.ErrorIs(t, err, serving.ErrInput)
	require.Contains(t, err.Error(), "index -4 out of range")
}
