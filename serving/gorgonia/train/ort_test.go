//go:build cgo

package train_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/serving/gorgonia/train"
	"github.com/quiverml/quiver/serving/onnx"
)

// A trained model exported to ONNX and served by ONNX Runtime gives the
// trainer's outputs within 1e-5, for every kind of model, and ONNX Runtime
// reads back its signature (a batch axis named "batch", batchable) and
// metadata.
func TestExportServedByONNXRuntime(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		spec train.Spec
		data *dataset
	}{
		{"logistic", train.LogisticRegression{Features: 2}, circles(256, 1)},
		{"mlp-relu", train.MLP{Sizes: []int{2, 16, 16, 1}}, circles(256, 1)},
		{"mlp-tanh", train.MLP{Sizes: []int{2, 16, 1}, Activation: train.Tanh}, circles(256, 1)},
		{"multiclass", train.MLP{Sizes: []int{2, 8, 3}, Output: train.Multiclass}, blobs(256, 3, 1)},
		{"regression", train.MLP{Sizes: []int{2, 16, 2}, Activation: train.Tanh, Output: train.Regression}, waves(256, 1)},
		{"two-tower", train.TwoTower{User: []int{8, 16, 8}, Item: []int{6, 8}, Activation: train.Tanh}, affinity(256, 1)},
		{"imported", importedSpec(t), circles(256, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTrainer(t, tc.spec, train.Options{Name: tc.name, Version: 3, Metadata: map[string]string{"team": "ml"}, LearningRate: 0.01})
			fit(t, tr, tc.data, 3, 32)
			path := filepath.Join(t.TempDir(), "model.onnx")
			require.NoError(t, tr.ExportFile(path))
			m, err := onnx.Load(ctx, path, onnx.Options{})
			require.NoError(t, err)
			defer m.Close()

			info, want := m.Info(), tr.Info()
			require.Equal(t, "quiver", info.Producer)
			require.Equal(t, int64(3), info.Version)
			require.Equal(t, want.GraphName, info.GraphName)
			require.Equal(t, want.Custom, info.Custom)
			require.True(t, info.Batchable, info.BatchReason)
			require.Len(t, info.Inputs, len(want.Inputs))
			for i, in := range want.Inputs {
				require.Equal(t, in.Name, info.Inputs[i].Name)
				require.Equal(t, in.Shape, info.Inputs[i].Shape)
				require.Equal(t, in.DimNames, info.Inputs[i].DimNames)
			}

			for _, rows := range []int{1, 7, 64} {
				in := randomInputs(want, rows, uint64(rows))
				got, err := m.Predict(ctx, in)
				require.NoError(t, err)
				exp, err := tr.Predict(ctx, in)
				require.NoError(t, err)
				require.Len(t, got, len(exp))
				for name, v := range exp {
					e, _ := v.Tensor.Float32s()
					g, err := got[name].Tensor.Float32s()
					require.NoError(t, err, name)
					require.Equal(t, v.Tensor.Shape, got[name].Tensor.Shape, name)
					for i := range e {
						require.InDelta(t, e[i], g[i], 1e-5, "output %s element %d (%d rows)", name, i, rows)
					}
				}
			}
		})
	}
}

// importedSpec is an MLP's export, imported to be trained further.
func importedSpec(t *testing.T) train.Spec {
	src := newTrainer(t, train.MLP{Sizes: []int{2, 12, 1}, Activation: train.Tanh}, train.Options{Seed: 8})
	return train.ONNXModel{Model: exportBytes(t, src)}
}

// The bytes of Export load with LoadBytes too, and a trainer loaded from a
// saved state exports the same file as the trainer that saved it.
func TestExportAfterReloadServes(t *testing.T) {
	ctx := context.Background()
	tr := newTrainer(t, train.MLP{Sizes: []int{2, 8, 1}}, train.Options{})
	fit(t, tr, circles(128, 2), 1, 32)
	var st, a, b bytes.Buffer
	require.NoError(t, tr.Save(ctx, &st))
	re, err := train.Load(&st, train.LoadOptions{})
	require.NoError(t, err)
	defer re.Close()
	require.NoError(t, tr.Export(&a))
	require.NoError(t, re.Export(&b))
	require.Equal(t, a.Bytes(), b.Bytes())
	m, err := onnx.LoadBytes(ctx, b.Bytes(), onnx.Options{})
	require.NoError(t, err)
	defer m.Close()
	in := randomInputs(re.Info(), 5, 1)
	got, err := m.Predict(ctx, in)
	require.NoError(t, err)
	want := predictY(t, re, in)
	g, _ := got["y"].Tensor.Float32s()
	for i := range want {
		require.InDelta(t, want[i], g[i], 1e-5)
	}
}

// The models of the accuracy tests, trained to their bars and exported,
// keep those bars when ONNX Runtime serves them: logistic regression on
// separable data at held-out accuracy >= 0.99, and the ReLU MLP on two
// circles at training BCE < 0.05 (TestMLPCircles's documented loss) and
// held-out accuracy >= 0.98; every probability within 1e-5 of Predict's.
func TestTrainedModelsServedByONNXRuntime(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name        string
		spec        train.Spec
		opts        train.Options
		data, test  *dataset
		epochs, bs  int
		minAccuracy float64
		maxBCE      float64 // on data; 0: not checked
	}{
		{name: "logistic", spec: train.LogisticRegression{Features: 10}, opts: train.Options{LearningRate: 0.05},
			epochs: 10, bs: 64, minAccuracy: 0.99},
		{name: "mlp", spec: train.MLP{Sizes: []int{2, 16, 16, 1}}, opts: train.Options{LearningRate: 0.02, Seed: 1},
			data: circles(1024, 7), test: circles(512, 8), epochs: 60, bs: 32, minAccuracy: 0.98, maxBCE: 0.05},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.data == nil {
				tc.data, tc.test = separable(3000, 10, 0.1, 42).split(2000)
			}
			tr := newTrainer(t, tc.spec, tc.opts)
			fit(t, tr, tc.data, tc.epochs, tc.bs)
			m, err := onnx.LoadBytes(ctx, exportBytes(t, tr), onnx.Options{})
			require.NoError(t, err)
			defer m.Close()
			for _, d := range []*dataset{tc.data, tc.test} {
				want, got := predictY(t, tr, d.all()), predictY(t, m, d.all())
				require.Len(t, got, len(want))
				for i := range want {
					require.InDelta(t, want[i], got[i], 1e-5, "row %d", i)
				}
			}
			acc := accuracy(predictY(t, m, tc.test.all()), tc.test.y32)
			bce := meanBCE(predictY(t, m, tc.data.all()), tc.data.y32)
			t.Logf("served by ONNX Runtime: held-out accuracy %.4f, training BCE %.4f", acc, bce)
			require.GreaterOrEqual(t, acc, tc.minAccuracy)
			if tc.maxBCE > 0 {
				require.Less(t, bce, tc.maxBCE)
			}
		})
	}
}
