package onnxpb_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/quiverml/quiver/internal/onnxpb"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

// The generated types read the models written by ONNX's own Python tooling
// (testdata/models/gen_models.py) and write them back byte for byte: same
// fields, same proto2 encoding (unpacked repeated numbers, as ONNX writes).
func TestGeneratedTypesRoundTripONNXFiles(t *testing.T) {
	paths, err := filepath.Glob("../../testdata/models/*.onnx")
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			var m onnxpb.ModelProto
			require.NoError(t, proto.Unmarshal(data, &m))
			require.Equal(t, int64(8), m.GetIrVersion())
			require.Equal(t, "quiver-testgen", m.GetProducerName())
			require.NotEmpty(t, m.GetGraph().GetInput())
			require.NotEmpty(t, m.GetGraph().GetOutput())
			require.Empty(t, m.ProtoReflect().GetUnknown(), "fields the generated types do not know")
			out, err := proto.MarshalOptions{Deterministic: true}.Marshal(&m)
			require.NoError(t, err)
			require.Equal(t, data, out)
		})
	}
}

func TestMLPDecodes(t *testing.T) {
	b, err := onnxpb.MLP(onnxpb.MLPSpec{Sizes: []int{8, 16, 3}, Seed: 1, Name: "net", Version: 2, Metadata: map[string]string{"k": "v"}})
	require.NoError(t, err)
	var m onnxpb.ModelProto
	require.NoError(t, proto.Unmarshal(b, &m))
	require.Equal(t, int64(2), m.GetModelVersion())
	require.Equal(t, "net", m.GetGraph().GetName())
	require.Len(t, m.GetGraph().GetInitializer(), 4)
	require.Equal(t, []string{"Gemm", "Relu", "Gemm"}, opTypes(m.GetGraph()))
	in := m.GetGraph().GetInput()[0].GetType().GetTensorType()
	require.Equal(t, int32(onnxpb.TensorProto_FLOAT), in.GetElemType())
	require.Equal(t, "batch", in.GetShape().GetDim()[0].GetDimParam())
	require.Equal(t, int64(8), in.GetShape().GetDim()[1].GetDimValue())
	require.Equal(t, "v", m.GetMetadataProps()[0].GetValue())
}

func opTypes(g *onnxpb.GraphProto) []string {
	var ops []string
	for _, n := range g.GetNode() {
		ops = append(ops, n.GetOpType())
	}
	return ops
}
