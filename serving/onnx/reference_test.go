package onnx

import (
	"encoding/binary"
	"math"
	"os"
	"testing"

	"github.com/quiverml/quiver/internal/onnxpb"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

// mlpReference evaluates testdata/models/mlp.onnx in plain Go, reading its
// weights with the ONNX protobuf types: relu(x W0 + b0) W1 + b1.
func mlpReference(t *testing.T, x []float32, rows int) []float32 {
	t.Helper()
	data, err := os.ReadFile(testModel("mlp"))
	require.NoError(t, err)
	var mp onnxpb.ModelProto
	require.NoError(t, proto.Unmarshal(data, &mp))
	w := map[string][]float32{}
	dims := map[string][]int64{}
	for _, in := range mp.GetGraph().GetInitializer() {
		vals := in.GetFloatData()
		if len(vals) == 0 {
			raw := in.GetRawData()
			vals = make([]float32, len(raw)/4)
			for i := range vals {
				vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			}
		}
		w[in.GetName()], dims[in.GetName()] = vals, in.GetDims()
	}
	layer := func(in []float32, wn, bn string, relu bool) []float32 {
		k, n := int(dims[wn][0]), int(dims[wn][1])
		out := make([]float32, rows*n)
		for r := 0; r < rows; r++ {
			for j := 0; j < n; j++ {
				s := w[bn][j]
				for i := 0; i < k; i++ {
					s += in[r*k+i] * w[wn][i*n+j]
				}
				if relu && s < 0 {
					s = 0
				}
				out[r*n+j] = s
			}
		}
		return out
	}
	return layer(layer(x, "w0", "b0", true), "w1", "b1", false)
}
