package quant

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quiverml/quiver/internal/onnxpb"
	quiverort "github.com/quiverml/quiver/internal/ort"
	"github.com/stretchr/testify/require"
	ort "github.com/yalue/onnxruntime_go"
	"google.golang.org/protobuf/proto"
)

func initORT(t testing.TB) {
	t.Helper()
	require.NoError(t, quiverort.Init(""), "ONNX Runtime is required: run `make ort` or set ONNXRUNTIME_LIB")
}

// runORT runs a one-input one-output model.
func runORT[I, O ort.TensorData](t testing.TB, modelBytes []byte, inShape []int64, in []I, outShape []int64) []O {
	t.Helper()
	initORT(t)
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(modelBytes, []string{"x"}, []string{"y"}, nil)
	require.NoError(t, err)
	defer sess.Destroy()
	xt, err := ort.NewTensor(ort.NewShape(inShape...), in)
	require.NoError(t, err)
	defer xt.Destroy()
	yt, err := ort.NewEmptyTensor[O](ort.NewShape(outShape...))
	require.NoError(t, err)
	defer yt.Destroy()
	require.NoError(t, sess.Run([]ort.Value{xt}, []ort.Value{yt}))
	return append([]O(nil), yt.GetData()...)
}

// qdqModel builds QuantizeLinear (quantize=true, x float -> y T) or
// DequantizeLinear (x T -> y float) with the given per-tensor or per-axis
// parameters as initializers.
func qdqModel(t testing.TB, quantize bool, elem onnxpb.TensorProto_DataType, shape []int64, axis int, scales []float32, zp *onnxpb.TensorProto) []byte {
	t.Helper()
	scaleDims := []int64{}
	if len(scales) > 1 {
		scaleDims = []int64{int64(len(scales))}
	}
	zp.Name = proto.String("zp")
	zp.Dims = scaleDims
	inType, outType := onnxpb.TensorProto_FLOAT, elem
	op := "QuantizeLinear"
	if !quantize {
		inType, outType, op = elem, onnxpb.TensorProto_FLOAT, "DequantizeLinear"
	}
	var attrs []*onnxpb.AttributeProto
	if len(scales) > 1 {
		attrs = append(attrs, intAttr("axis", int64(axis)))
	}
	g := &onnxpb.GraphProto{
		Name:        proto.String("qdq"),
		Node:        []*onnxpb.NodeProto{node(op, []string{"x", "scale", "zp"}, []string{"y"}, attrs...)},
		Initializer: []*onnxpb.TensorProto{floatTensor("scale", scaleDims, scales), zp},
		Input:       []*onnxpb.ValueInfoProto{valueInfo("x", inType, shape...)},
		Output:      []*onnxpb.ValueInfoProto{valueInfo("y", outType, shape...)},
	}
	return marshalModel(t, model(13, g))
}

// edgeData returns values that stress rounding and saturation for scale s:
// exact .5 ties of both parities, near-ties one ulp either side, values far
// beyond saturation, ±Inf, ±0, subnormals and random values.
func edgeData(s float32, n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	var x []float32
	for k := -300; k <= 300; k++ {
		tie := (float32(k) + 0.5) * s
		x = append(x, tie, math.Nextafter32(tie, float32(math.Inf(1))), math.Nextafter32(tie, float32(math.Inf(-1))))
	}
	x = append(x, 0, float32(math.Copysign(0, -1)), 1e30, -1e30, float32(math.Inf(1)), float32(math.Inf(-1)),
		math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32,
		s*127.5, s*-128.5, s*255.5, s*-127.5, s*128, s*-129)
	for len(x) < n {
		x = append(x, float32(r.NormFloat64()*float64(s)*100))
	}
	return x[:n]
}

func TestQuantizeMatchesORT(t *testing.T) {
	const n = 2048
	cases := []struct {
		name  string
		scale float32
		zp    int32
	}{
		{"pow2 scale zp0", 0.5, 0},
		{"odd scale zp0", 0.0173, 0},
		{"odd scale zp+", 0.0371, 17},
		{"odd scale zp-", 0.1234567, -100},
		{"tiny scale", 3e-7, 3},
	}
	for _, tc := range cases {
		x := edgeData(tc.scale, n, 7)
		t.Run("int8/"+tc.name, func(t *testing.T) {
			zp := int8(tc.zp)
			m := qdqModel(t, true, onnxpb.TensorProto_INT8, []int64{n}, 0, []float32{tc.scale}, int8Tensor("", nil, []int8{zp}))
			want := runORT[float32, int8](t, m, []int64{n}, x, []int64{n})
			got := make([]int8, n)
			require.NoError(t, Quantize(got, x, tc.scale, zp))
			requireEqualAt(t, want, got, x)
		})
		t.Run("uint8/"+tc.name, func(t *testing.T) {
			zp := uint8(tc.zp + 128)
			m := qdqModel(t, true, onnxpb.TensorProto_UINT8, []int64{n}, 0, []float32{tc.scale}, uint8Tensor("", nil, []uint8{zp}))
			want := runORT[float32, uint8](t, m, []int64{n}, x, []int64{n})
			got := make([]uint8, n)
			require.NoError(t, Quantize(got, x, tc.scale, zp))
			requireEqualAt(t, want, got, x)
		})
	}
}

func requireEqualAt[T comparable](t *testing.T, want, got []T, x []float32) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		if want[i] != got[i] {
			require.Failf(t, "mismatch", "element %d (x=%v, bits %#x): ORT %v, quant %v", i, x[i], math.Float32bits(x[i]), want[i], got[i])
		}
	}
}

func TestQuantizeAxisMatchesORT(t *testing.T) {
	shape := []int64{3, 5, 7}
	shapeInt := []int{3, 5, 7}
	n := 3 * 5 * 7
	for _, axis := range []int{1, 2, -1, 0} {
		ch := shapeInt[(axis+3)%3]
		scales := make([]float32, ch)
		zps8 := make([]int8, ch)
		zpsU := make([]uint8, ch)
		for c := range scales {
			scales[c] = 0.01 + 0.037*float32(c)
			zps8[c] = int8(c*13 - 20)
			zpsU[c] = uint8(c*29 + 3)
		}
		// Quantize on values built per element from its channel's scale so
		// that ties land in every channel.
		x := make([]float32, n)
		base := edgeData(1, n, uint64(axis+10))
		stride := 1
		for _, d := range shapeInt[(axis+3)%3+1:] {
			stride *= d
		}
		for i := range x {
			c := (i / stride) % ch
			x[i] = base[(i*7)%len(base)] * scales[c]
		}
		t.Run("int8/axis", func(t *testing.T) {
			m := qdqModel(t, true, onnxpb.TensorProto_INT8, shape, axis, scales, int8Tensor("", nil, zps8))
			want := runORT[float32, int8](t, m, shape, x, shape)
			got := make([]int8, n)
			require.NoError(t, QuantizeAxis(got, x, shapeInt, axis, scales, zps8))
			requireEqualAt(t, want, got, x)

			dm := qdqModel(t, false, onnxpb.TensorProto_INT8, shape, axis, scales, int8Tensor("", nil, zps8))
			wantF := runORT[int8, float32](t, dm, shape, got, shape)
			gotF := make([]float32, n)
			require.NoError(t, DequantizeAxis(gotF, got, shapeInt, axis, scales, zps8))
			requireBitsEqual(t, wantF, gotF)
		})
		t.Run("uint8/axis", func(t *testing.T) {
			m := qdqModel(t, true, onnxpb.TensorProto_UINT8, shape, axis, scales, uint8Tensor("", nil, zpsU))
			want := runORT[float32, uint8](t, m, shape, x, shape)
			got := make([]uint8, n)
			require.NoError(t, QuantizeAxis(got, x, shapeInt, axis, scales, zpsU))
			requireEqualAt(t, want, got, x)

			dm := qdqModel(t, false, onnxpb.TensorProto_UINT8, shape, axis, scales, uint8Tensor("", nil, zpsU))
			wantF := runORT[uint8, float32](t, dm, shape, got, shape)
			gotF := make([]float32, n)
			require.NoError(t, DequantizeAxis(gotF, got, shapeInt, axis, scales, zpsU))
			requireBitsEqual(t, wantF, gotF)
		})
	}
}

func requireBitsEqual(t *testing.T, want, got []float32) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
			require.Failf(t, "mismatch", "element %d: ORT %v (%#x), quant %v (%#x)", i, want[i], math.Float32bits(want[i]), got[i], math.Float32bits(got[i]))
		}
	}
}

func TestDequantizeMatchesORT(t *testing.T) {
	all8 := make([]int8, 256)
	allU := make([]uint8, 256)
	for i := range all8 {
		all8[i] = int8(i - 128)
		allU[i] = uint8(i)
	}
	for _, s := range []float32{0.5, 0.0173, 3e-7, 1234.5} {
		m := qdqModel(t, false, onnxpb.TensorProto_INT8, []int64{256}, 0, []float32{s}, int8Tensor("", nil, []int8{-7}))
		want := runORT[int8, float32](t, m, []int64{256}, all8, []int64{256})
		got := make([]float32, 256)
		require.NoError(t, Dequantize(got, all8, s, int8(-7)))
		requireBitsEqual(t, want, got)

		m = qdqModel(t, false, onnxpb.TensorProto_UINT8, []int64{256}, 0, []float32{s}, uint8Tensor("", nil, []uint8{131}))
		want = runORT[uint8, float32](t, m, []int64{256}, allU, []int64{256})
		require.NoError(t, Dequantize(got, allU, s, uint8(131)))
		requireBitsEqual(t, want, got)
	}
}
