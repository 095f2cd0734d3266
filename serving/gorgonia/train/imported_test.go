package train_test

import (
	"bytes"
	"context"

	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/quiverml/quiver/internal/onnxpb"
	"github.com/quiverml/quiver/serving"
	gg "github.com/quiverml/quiver/serving/gorgonia"
	"github.com/quiverml/quiver/serving/gorgonia/train"
)

type kindCase struct {
	name   string
	spec   train.Spec
	output train.Output
	data   *dataset
}

func kindCases() []kindCase {
	return []kindCase{
		{"logistic", train.LogisticRegression{Features: 2}, train.Binary, circles(128, 1)},
		{"mlp-binary", train.MLP{Sizes: []int{2, 8, 8, 1}}, train.Binary, circles(128, 1)},
		{"mlp-tanh", train.MLP{Sizes: []int{2, 8, 1}, Activation: train.Tanh}, train.Binary, circles(128, 1)},
		{"multiclass", train.MLP{Sizes: []int{2, 8, 3}, Output: train.Multiclass}, train.Multiclass, blobs(128, 3, 1)},
		{"regression", train.MLP{Sizes: []int{2, 8, 2}, Activation: train.Tanh, Output: train.Regression}, train.Regression, waves(128, 1)},
		{"two-tower", train.TwoTower{User: []int{8, 8, 4}, Item: []int{6, 4}, Activation: train.Tanh}, train.Binary, affinity(128, 1)},
	}
}

func exportBytes(t *testing.T, tr *train.Trainer) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, tr.Export(&b))
	return b.Bytes()
}

func requireClose(t *testing.T, want, got map[string]serving.Value, tol float64) {
	t.Helper()
	require.Len(t, got, len(want))
	for name, v := range want {
		w, err := v.Tensor.Float32s()
		require.NoError(t, err)
		g, err := got[name].Tensor.Float32s()
		require.NoError(t, err, name)
		require.Equal(t, v.Tensor.Shape, got[name].Tensor.Shape, name)
		for i := range w {
			require.InDelta(t, w[i], g[i], tol, "output %s element %d", name, i)
		}
	}
}

// Every exported model runs on serving/gorgonia, the pure-Go engine, with
// the trainer's outputs.
func TestExportServedByGorgoniaEngine(t *testing.T) {
	ctx := context.Background()
	for _, tc := range kindCases() {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTrainer(t, tc.spec, train.Options{LearningRate: 0.01})
			fit(t, tr, tc.data, 2, 32)
			m, err := gg.LoadBytes(ctx, exportBytes(t, tr), gg.Options{})
			require.NoError(t, err)
			defer m.Close()
			require.True(t, m.Info().Batchable, m.Info().BatchReason)
			for _, rows := range []int{1, 5} {
				in := randomInputs(tr.Info(), rows, 3)
				want, err := tr.Predict(ctx, in)
				require.NoError(t, err)
				got, err := m.Predict(ctx, in)
				require.NoError(t, err)
				requireClose(t, want, got, 1e-5)
			}
		})
	}
}

// An exported model imported as an ONNXModel is the same model: it
// predicts what the trainer that exported it predicts, and the same
// updates on both give the same losses and the same models, for every
// kind of model (the loss reads the logits under the final Sigmoid or
// Softmax, as the built-in specs do).
func TestImportedMatchesBuiltIn(t *testing.T) {
	ctx := context.Background()
	for _, tc := range kindCases() {
		t.Run(tc.name, func(t *testing.T) {
			// SGD keeps no state, so a trainer that has taken steps and a
			// fresh one over its export continue alike.
			opts := train.Options{Solver: train.SGD, LearningRate: 0.05, L2: 0.01, ClipNorm: 10}
			a := newTrainer(t, tc.spec, opts)
			fit(t, a, tc.data, 1, 32)
			b := newTrainer(t, train.ONNXModel{Model: exportBytes(t, a), Output: tc.output}, opts)
			require.Equal(t, "y", b.Spec().(train.ONNXModel).Target)
			infoA, infoB := a.Info(), b.Info()
			require.Equal(t, infoA.Inputs, infoB.Inputs)
			require.Equal(t, infoA.Outputs, infoB.Outputs)
			in := tc.data.all()
			want, err := a.Predict(ctx, in)
			require.NoError(t, err)
			got, err := b.Predict(ctx, in)
			require.NoError(t, err)
			requireClose(t, want, got, 1e-5)

			for from := 0; from < tc.data.rows; from += 32 {
				in, y := tc.data.batch(from, from+32)
				ua, err := a.Update(ctx, in, y)
				require.NoError(t, err)
				ub, err := b.Update(ctx, in, y)
				require.NoError(t, err)
				require.InDelta(t, ua.Loss, ub.Loss, 1e-5*max(1, ua.Loss), "step %d", ua.Step)
				require.InDelta(t, ua.GradNorm, ub.GradNorm, 1e-4*max(1, ua.GradNorm))
			}
			want, err = a.Predict(ctx, in)
			require.NoError(t, err)
			got, err = b.Predict(ctx, in)
			require.NoError(t, err)
			requireClose(t, want, got, 1e-4)
		})
	}
}

// withIdentity returns model with an output "p" = Identity(from) added, so
// that the loss on "p" cannot see the Sigmoid or Softmax under it.
func withIdentity(t *testing.T, model []byte, from string) []byte {
	t.Helper()
	mp := &onnxpb.ModelProto{}
	require.NoError(t, proto.Unmarshal(model, mp))
	var vi *onnxpb.ValueInfoProto
	for _, o := range mp.Graph.Output {
		if o.GetName() == from {
			vi = proto.Clone(o).(*onnxpb.ValueInfoProto)
		}
	}
	require.NotNil(t, vi)
	vi.Name = proto.String("p")
	mp.Graph.Node = append(mp.Graph.Node, &onnxpb.NodeProto{OpType: proto.String("Identity"), Input: []string{from}, Output: []string{"p"}})
	mp.Graph.Output = append(mp.Graph.Output, vi)
	b, err := proto.Marshal(mp)
	require.NoError(t, err)
	return b
}

// When the target holds probabilities that the loss cannot trace back to
// logits, the loss reads them with log(p + 1e-7): for probabilities away
// from 0 and 1 it gives the same loss and the same steps as the loss on
// logits.
func TestImportedProbabilities(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		spec   train.Spec
		output train.Output
		data   *dataset
	}{
		{"binary", train.MLP{Sizes: []int{2, 8, 1}}, train.Binary, circles(128, 2)},
		{"multiclass", train.MLP{Sizes: []int{2, 8, 3}, Output: train.Multiclass}, train.Multiclass, blobs(128, 3, 2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.data.inputs["x"] { // moderate logits: p away from 0 and 1
				tc.data.inputs["x"][i] *= 0.3
			}
			src := newTrainer(t, tc.spec, train.Options{})
			model := withIdentity(t, exportBytes(t, src), "y")
			opts := train.Options{Solver: train.SGD, LearningRate: 0.1}
			logits := newTrainer(t, train.ONNXModel{Model: model, Target: "y", Output: tc.output}, opts)
			probs := newTrainer(t, train.ONNXModel{Model: model, Target: "p", Output: tc.output}, opts)
			out, err := probs.Predict(ctx, tc.data.all())
			require.NoError(t, err)
			require.Contains(t, out, "p")
			require.Contains(t, out, "y")
			for from := 0; from < tc.data.rows; from += 32 {
				in, y := tc.data.batch(from, from+32)
				ul, err := logits.Update(ctx, in, y)
				require.NoError(t, err)
				up, err := probs.Update(ctx, in, y)
				require.NoError(t, err)
				require.InDelta(t, ul.Loss, up.Loss, 1e-4)
			}
			pl := predictY(t, logits, tc.data.all())
			pp := predictY(t, probs, tc.data.all())
			for i := range pl {
				require.InDelta(t, pl[i], pp[i], 1e-4)
			}
		})
	}
}

// embeddingModel is an ONNX model of an id embedding: ids int64
// [batch, 1] -> Gather from a table of n x 4 -> Flatten -> Gemm -> Sigmoid.
func embeddingModel(t *testing.T, n int) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 5))
	table := make([]float32, n*4)
	for i := range table {
		table[i] = float32(0.1 * rng.NormFloat64())
	}
	g := &onnxpb.GraphProto{Name: proto.String("ids")}
	g.Initializer = []*onnxpb.TensorProto{
		onnxpb.Float32Tensor("table", []int64{int64(n), 4}, table),
		onnxpb.Float32Tensor("w", []int64{4, 1}, []float32{0.5, -0.5, 0.25, 0.1}),
		onnxpb.Float32Tensor("b", []int64{1}, []float32{0}),
	}
	node := func(op string, in []string, out string, attrs ...*onnxpb.AttributeProto) {
		g.Node = append(g.Node, &onnxpb.NodeProto{OpType: proto.String(op), Input: in, Output: []string{out}, Attribute: attrs})
	}
	node("Gather", []string{"table", "ids"}, "rows")
	node("Flatten", []string{"rows"}, "flat", &onnxpb.AttributeProto{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(1)})
	node("Gemm", []string{"flat", "w", "b"}, "logits")
	node("Sigmoid", []string{"logits"}, "y")
	g.Input = []*onnxpb.ValueInfoProto{onnxpb.TensorInfo("ids", onnxpb.TensorProto_INT64, "batch", int64(1))}
	g.Output = []*onnxpb.ValueInfoProto{onnxpb.TensorInfo("y", onnxpb.TensorProto_FLOAT, "batch", int64(1))}
	b, err := proto.Marshal(onnxpb.Model(g, 1, nil))
	require.NoError(t, err)
	return b
}

// An imported model with an int64 input learns an embedding per id
// through Gather: ids of one parity are positive.
func TestImportedEmbedding(t *testing.T) {
	ctx := context.Background()
	const n = 16
	tr := newTrainer(t, train.ONNXModel{Model: embeddingModel(t, n)}, train.Options{LearningRate: 0.05})
	ids := make([]int64, n)
	y := make([]float32, n)
	for i := range ids {
		ids[i] = int64(i)
		y[i] = float32(i % 2)
	}
	in := map[string]serving.Tensor{"ids": serving.NewTensor([]int64{n, 1}, ids)}
	first := 0.0
	var last train.UpdateStats
	for step := 0; step < 150; step++ {
		us, err := tr.Update(ctx, in, serving.NewTensor([]int64{n}, y))
		require.NoError(t, err)
		if step == 0 {
			first = us.Loss
		}
		last = us
	}
	p := predictY(t, tr, in)
	require.Equal(t, 1.0, accuracy(p, y))
	require.Less(t, last.Loss, first/4)
	t.Logf("loss %.4f -> %.4f", first, last.Loss)

	// Int64 inputs are checked like any other.
	_, err := tr.Update(ctx, map[string]serving.Tensor{"ids": serving.NewTensor([]int64{2, 1}, []float32{1, 2})}, serving.NewTensor([]int64{2}, []float32{0, 1}))
	require.ErrorIs(t, err, serving.ErrType)
}

func TestImportedSaveLoadResumes(t *testing.T) {
	ctx := context.Background()
	data := circles(128, 4)
	src := newTrainer(t, train.MLP{Sizes: []int{2, 8, 1}}, train.Options{})
	a := newTrainer(t, train.ONNXModel{Model: exportBytes(t, src)}, train.Options{Name: "imported", Metadata: map[string]string{"k": "v"}})
	fit(t, a, data, 1, 32)
	var st bytes.Buffer
	require.NoError(t, a.Save(ctx, &st))
	b, err := train.Load(bytes.NewReader(st.Bytes()), train.LoadOptions{})
	require.NoError(t, err)
	defer b.Close()
	require.Equal(t, a.Spec(), b.Spec())
	require.Equal(t, a.Options(), b.Options())
	require.Equal(t, a.Info(), b.Info())
	fit(t, a, data, 1, 32)
	fit(t, b, data, 1, 32)
	require.Equal(t, predictY(t, a, data.all()), predictY(t, b, data.all()))
	require.Equal(t, state(t, a), state(t, b))
	require.Equal(t, exportBytes(t, a), exportBytes(t, b))
}

// An imported model's export keeps its opset and nodes and carries the
// trained parameters: loaded again, it predicts what the trainer predicts.
func TestImportedExport(t *testing.T) {
	ctx := context.Background()
	tr := newTrainer(t, train.ONNXModel{Model: embeddingModel(t, 8)}, train.Options{Version: 4})
	in := map[string]serving.Tensor{"ids": serving.NewTensor([]int64{3, 1}, []int64{1, 2, 3})}
	_, err := tr.Update(ctx, in, serving.NewTensor([]int64{3}, []float32{1, 0, 1}))
	require.NoError(t, err)
	b := exportBytes(t, tr)
	mp := &onnxpb.ModelProto{}
	require.NoError(t, proto.Unmarshal(b, mp))
	require.Equal(t, int64(17), mp.GetOpsetImport()[0].GetVersion())
	require.Equal(t, int64(4), mp.GetModelVersion())
	require.Len(t, mp.GetGraph().GetNode(), 4)
	m, err := gg.LoadBytes(ctx, b, gg.Options{})
	require.NoError(t, err)
	defer m.Close()
	got, err := m.Predict(ctx, in)
	require.NoError(t, err)
	want, err := tr.Predict(ctx, in)
	require.NoError(t, err)
	requireClose(t, want, got, 1e-6)
	require.Equal(t, "1", m.Info().Custom[train.MetaSteps])
}

func TestImportedRefusesBadModels(t *testing.T) {
	src := newTrainer(t, train.MLP{Sizes: []int{2, 3}, Output: train.Multiclass}, train.Options{})
	good := exportBytes(t, src)
	model := func(edit func(g *onnxpb.GraphProto)) []byte {
		mp := &onnxpb.ModelProto{}
		require.NoError(t, proto.Unmarshal(good, mp))
		edit(mp.Graph)
		b, err := proto.Marshal(mp)
		require.NoError(t, err)
		return b
	}
	for _, tc := range []struct {
		name string
		spec train.ONNXModel
		msg  string
	}{
		{"empty", train.ONNXModel{}, "empty"},
		{"garbage", train.ONNXModel{Model: []byte("not a model")}, "not an ONNX model"},
		{"unknown target", train.ONNXModel{Model: good, Target: "z", Output: train.Multiclass}, `no output "z"`},
		{"binary on classes", train.ONNXModel{Model: good, Output: train.Binary}, "one value per row"},
		{"bad output", train.ONNXModel{Model: good, Output: 7}, "output(7)"},
		{"dynamic feature axis", train.ONNXModel{Output: train.Multiclass, Model: model(func(g *onnxpb.GraphProto) {
			g.Input[0] = onnxpb.TensorInfo("x", onnxpb.TensorProto_FLOAT, "batch", "features")
		})}, "axis 1 is dynamic"},
		{"fixed batch", train.ONNXModel{Output: train.Multiclass, Model: model(func(g *onnxpb.GraphProto) {
			g.Input[0] = onnxpb.TensorInfo("x", onnxpb.TensorProto_FLOAT, int64(4), int64(2))
		})}, "fixed first axis"},
		{"nothing to train", train.ONNXModel{Output: train.Multiclass, Model: model(func(g *onnxpb.GraphProto) {
			g.Node = []*onnxpb.NodeProto{{OpType: proto.String("Softmax"), Input: []string{"x"}, Output: []string{"y"}}}
			g.Initializer = nil
			g.Output[0] = onnxpb.TensorInfo("y", onnxpb.TensorProto_FLOAT, "batch", int64(2))
		})}, "nothing to train"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := train.New(tc.spec, train.Options{})
			require.ErrorIs(t, err, train.ErrSpec)
			require.Contains(t, err.Error(), tc.msg)
		})
	}
	_, err := train.New(train.ONNXModel{Model: []byte("x")}, train.Options{})
	require.ErrorIs(t, err, serving.ErrModel, "the engine's error is kept")
}

// An imported model answers a request larger than MaxBatchRows in parts,
// each row as it would be answered alone.
func TestImportedPredictInParts(t *testing.T) {
	ctx := context.Background()
	src := newTrainer(t, train.TwoTower{User: []int{3, 4}, Item: []int{2, 4}}, train.Options{})
	tr := newTrainer(t, train.ONNXModel{Model: exportBytes(t, src)}, train.Options{MaxBatchRows: 4})
	in := randomInputs(tr.Info(), 10, 7)
	got, err := tr.Predict(ctx, in)
	require.NoError(t, err)
	require.Equal(t, []int64{10, 4}, got["user_embedding"].Tensor.Shape)
	want, err := src.Predict(ctx, in)
	require.NoError(t, err)
	requireClose(t, want, got, 1e-5)
	empty, err := tr.Predict(ctx, randomInputs(tr.Info(), 0, 1))
	require.NoError(t, err)
	require.Equal(t, []int64{0, 1}, empty["y"].Tensor.Shape)
}

// scaledModel is y = sigmoid(s · (x·w + b)) with a scalar initializer s (a
// temperature): a parameter of rank 0.
func scaledModel(t *testing.T) []byte {
	t.Helper()
	g := &onnxpb.GraphProto{Name: proto.String("scaled")}
	s := onnxpb.Float32Tensor("s", nil, []float32{0.5})
	g.Initializer = []*onnxpb.TensorProto{
		onnxpb.Float32Tensor("w", []int64{2, 1}, []float32{0.3, -0.2}),
		onnxpb.Float32Tensor("b", []int64{1}, []float32{0}),
		s,
	}
	g.Node = []*onnxpb.NodeProto{
		{OpType: proto.String("Gemm"), Input: []string{"x", "w", "b"}, Output: []string{"z"}},
		{OpType: proto.String("Mul"), Input: []string{"z", "s"}, Output: []string{"logits"}},
		{OpType: proto.String("Sigmoid"), Input: []string{"logits"}, Output: []string{"y"}},
	}
	g.Input = []*onnxpb.ValueInfoProto{onnxpb.TensorInfo("x", onnxpb.TensorProto_FLOAT, "batch", int64(2))}
	g.Output = []*onnxpb.ValueInfoProto{onnxpb.TensorInfo("y", onnxpb.TensorProto_FLOAT, "batch", int64(1))}
	b, err := proto.Marshal(onnxpb.Model(g, 13, nil))
	require.NoError(t, err)
	return b
}

// A scalar parameter trains like any other: it moves, the model learns,
// and the state saves, loads and exports. (Its values were read as a
// slice, which a rank-0 tensor's Data is not.)
func TestImportedScalarParameter(t *testing.T) {
	ctx := context.Background()
	tr := newTrainer(t, train.ONNXModel{Model: scaledModel(t)}, train.Options{LearningRate: 0.05})
	data, test := separable(600, 2, 0.1, 5).split(400)
	fit(t, tr, data, 10, 32)
	acc := accuracy(predictY(t, tr, test.all()), test.y32)
	require.GreaterOrEqual(t, acc, 0.97)

	m, err := gg.LoadBytes(ctx, exportBytes(t, tr), gg.Options{})
	require.NoError(t, err)
	defer m.Close()
	s := m.Graph().Initializer("s").Float32s()
	require.Len(t, s, 1)
	require.NotEqual(t, float32(0.5), s[0], "the scalar parameter trained")
	requireClose(t, mustPredict(t, tr, test.all()), mustPredict(t, m, test.all()), 1e-5)

	var st bytes.Buffer
	require.NoError(t, tr.Save(ctx, &st))
	re, err := train.Load(&st, train.LoadOptions{})
	require.NoError(t, err)
	defer re.Close()
	require.Equal(t, exportBytes(t, tr), exportBytes(t, re))
}

func mustPredict(t *testing.T, m serving.Model, in map[string]serving.Tensor) map[string]serving.Value {
	t.Helper()
	out, err := m.Predict(context.Background(), in)
	require.NoError(t, err)
	return out
}
