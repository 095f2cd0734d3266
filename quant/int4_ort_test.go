package quant

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quiverml/quiver/internal/onnxpb"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

// TestInt4MatchesMatMulNBits feeds Int4Blocks straight into ONNX Runtime's
// MatMulNBits (com.microsoft, bits=4, block_size=32, default zero point 8)
// and checks Y = A·W against the product with our own dequantized W: the
// nibble order, zero point and scale layout must all agree.
func TestInt4MatchesMatMulNBits(t *testing.T) {
	initORT(t)
	const m, k, n, bs = 5, 96, 7, 32
	r := rand.New(rand.NewPCG(41, 42))
	a := randn(r, m*k, 1)
	w := randn(r, k*n, 0.2) // [K, N]
	// MatMulNBits stores W transposed: row j holds column j of W.
	wt := make([]float32, n*k)
	for i := range k {
		for j := range n {
			wt[j*k+i] = w[i*n+j]
		}
	}
	blocks, err := QuantizeInt4(wt, bs)
	require.NoError(t, err)
	deq := make([]float32, n*k)
	require.NoError(t, blocks.Dequantize(deq))

	g := &onnxpb.GraphProto{
		Name: proto.String("nbits"),
		Node: []*onnxpb.NodeProto{{
			OpType: proto.String("MatMulNBits"), Domain: proto.String("com.microsoft"), Name: proto.String("mm"),
			Input: []string{"x", "B", "scales"}, Output: []string{"y"},
			Attribute: []*onnxpb.AttributeProto{intAttr("K", k), intAttr("N", n), intAttr("bits", 4), intAttr("block_size", bs)},
		}},
		Initializer: []*onnxpb.TensorProto{
			uint8Tensor("B", []int64{n, k / bs, bs / 2}, blocks.Data),
			floatTensor("scales", []int64{n * k / bs}, blocks.Scales),
		},
		Input:  []*onnxpb.ValueInfoProto{valueInfo("x", onnxpb.TensorProto_FLOAT, m, k)},
		Output: []*onnxpb.ValueInfoProto{valueInfo("y", onnxpb.TensorProto_FLOAT, m, n)},
	}
	md := model(17, g)
	md.OpsetImport = append(md.OpsetImport, &onnxpb.OperatorSetIdProto{Domain: proto.String("com.microsoft"), Version: proto.Int64(1)})
	got := runORT[float32, float32](t, marshalModel(t, md), []int64{m, k}, a, []int64{m, n})

	for i := range m {
		for j := range n {
			var want, mag float64
			for p := range k {
				want += float64(a[i*k+p]) * float64(deq[j*k+p])
				mag += math.Abs(float64(a[i*k+p]) * float64(deq[j*k+p]))
			}
			require.InDelta(t, want, float64(got[i*n+j]), 1e-5*mag+1e-6, "y[%d,%d]", i, j)
		}
	}
}
