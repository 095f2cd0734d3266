package train_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/quiverml/quiver/internal/onnxpb"
	"github.com/quiverml/quiver/serving/gorgonia/train"
)

func exportModel(t *testing.T, tr *train.Trainer) *onnxpb.ModelProto {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, tr.Export(&b))
	m := &onnxpb.ModelProto{}
	require.NoError(t, proto.Unmarshal(b.Bytes(), m))
	return m
}

// The exported file declares what ONNX Runtime needs (IR 8, opset 13) and
// carries the trainer's name, version and metadata, with the training
// progress of the exported parameters.
func TestExportHeader(t *testing.T) {
	tr := newTrainer(t, train.MLP{Sizes: []int{4, 5, 3}, Output: train.Multiclass},
		train.Options{Name: "churn", Version: 7, Metadata: map[string]string{"owner": "growth"}})
	us := fit(t, tr, blobs4(64), 1, 32)

	m := exportModel(t, tr)
	require.Equal(t, int64(8), m.GetIrVersion())
	require.Len(t, m.GetOpsetImport(), 1)
	require.Equal(t, "", m.GetOpsetImport()[0].GetDomain())
	require.Equal(t, int64(13), m.GetOpsetImport()[0].GetVersion())
	require.Equal(t, "quiver", m.GetProducerName())
	require.Equal(t, int64(7), m.GetModelVersion())
	require.Equal(t, "churn", m.GetGraph().GetName())
	meta := map[string]string{}
	for _, p := range m.GetMetadataProps() {
		meta[p.GetKey()] = p.GetValue()
	}
	require.Equal(t, map[string]string{
		"owner":         "growth",
		train.MetaSteps: "2",
		train.MetaRows:  "64",
		train.MetaLoss:  strconv.FormatFloat(us.Loss, 'g', -1, 64),
	}, meta)
	require.Equal(t, meta, tr.Info().Custom)

	in := m.GetGraph().GetInput()
	require.Len(t, in, 1)
	require.Equal(t, "x", in[0].GetName())
	dims := in[0].GetType().GetTensorType().GetShape().GetDim()
	require.Equal(t, "batch", dims[0].GetDimParam())
	require.Equal(t, int64(4), dims[1].GetDimValue())
	ops := []string{}
	for _, n := range m.GetGraph().GetNode() {
		ops = append(ops, n.GetOpType())
	}
	require.Equal(t, []string{"Gemm", "Relu", "Gemm", "Softmax"}, ops)
}

// ExportFile replaces the file atomically and leaves no temporary file.
func TestExportFile(t *testing.T) {
	tr := newTrainer(t, train.LogisticRegression{Features: 2}, train.Options{})
	dir := t.TempDir()
	path := filepath.Join(dir, "model.onnx")
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o644))
	require.NoError(t, tr.ExportFile(path))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var want bytes.Buffer
	require.NoError(t, tr.Export(&want))
	require.Equal(t, want.Bytes(), b)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)

	require.Error(t, tr.ExportFile(filepath.Join(dir, "missing", "model.onnx")))
	_, err = os.ReadFile(path)
	require.NoError(t, err)
}

// Export reads the parameters Predict serves: while no step runs, two
// exports are byte-identical, and a step changes the weights.
func TestExportFollowsSteps(t *testing.T) {
	tr := newTrainer(t, train.LogisticRegression{Features: 2}, train.Options{})
	var a, b, c bytes.Buffer
	require.NoError(t, tr.Export(&a))
	require.NoError(t, tr.Export(&b))
	require.Equal(t, a.Bytes(), b.Bytes())
	in, y := separable(8, 2, 0, 1).batch(0, 8)
	_, err := tr.Update(context.Background(), in, y)
	require.NoError(t, err)
	require.NoError(t, tr.Export(&c))
	require.NotEqual(t, a.Bytes(), c.Bytes())
}
