package train_test

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/gorgonia/train"
)

// Logistic regression on linearly separable data reaches an accuracy of at
// least 0.99 on held-out rows, with each solver.
func TestLogisticRegressionSeparable(t *testing.T) {
	for _, opts := range []train.Options{
		{Solver: train.Adam, LearningRate: 0.05},
		{Solver: train.SGD, LearningRate: 0.5},
		{Solver: train.Momentum, LearningRate: 0.1},
	} {
		t.Run(opts.Solver.String(), func(t *testing.T) {
			data, test := separable(3000, 10, 0.1, 42).split(2000)
			tr := newTrainer(t, train.LogisticRegression{Features: 10}, opts)
			before := accuracy(predictY(t, tr, test.all()), test.y32)
			fit(t, tr, data, 10, 64)
			acc := accuracy(predictY(t, tr, test.all()), test.y32)
			t.Logf("%v: held-out accuracy %.4f (before training %.4f)", opts.Solver, acc, before)
			require.GreaterOrEqual(t, acc, 0.99)
			require.Less(t, before, 0.9, "the task must not be solved by the initial weights")
		})
	}
}

// An MLP on two concentric circles (not linearly separable) reaches a mean
// binary cross-entropy below 0.05 on its training set and 0.98 accuracy on
// held-out rows; logistic regression, for contrast, stays near chance.
func TestMLPCircles(t *testing.T) {
	for _, act := range []train.Activation{train.ReLU, train.Tanh} {
		t.Run(act.String(), func(t *testing.T) {
			data, test := circles(1024, 7), circles(512, 8)
			tr := newTrainer(t, train.MLP{Sizes: []int{2, 16, 16, 1}, Activation: act}, train.Options{LearningRate: 0.02, Seed: 1})
			fit(t, tr, data, 60, 32)
			loss := meanBCE(predictY(t, tr, data.all()), data.y32)
			acc := accuracy(predictY(t, tr, test.all()), test.y32)
			t.Logf("%v: training BCE %.4f, held-out accuracy %.4f", act, loss, acc)
			require.Less(t, loss, 0.05)
			require.GreaterOrEqual(t, acc, 0.98)
		})
	}
	lin := newTrainer(t, train.LogisticRegression{Features: 2}, train.Options{LearningRate: 0.05})
	data := circles(1024, 7)
	fit(t, lin, data, 20, 32)
	require.Greater(t, meanBCE(predictY(t, lin, data.all()), data.y32), 0.6, "a linear model cannot fit circles")
}

// A multiclass MLP on three Gaussian blobs classifies 0.97 of held-out rows
// correctly, and its outputs are probabilities that sum to 1.
func TestMLPMulticlass(t *testing.T) {
	data, test := blobs(900, 3, 9), blobs(300, 3, 10)
	tr := newTrainer(t, train.MLP{Sizes: []int{2, 8, 3}, Activation: train.Tanh, Output: train.Multiclass}, train.Options{LearningRate: 0.02})
	us := fit(t, tr, data, 20, 50)
	p := predictY(t, tr, test.all())
	ok := 0
	for r := 0; r < test.rows; r++ {
		row := p[3*r : 3*r+3]
		require.InDelta(t, 1, float64(row[0]+row[1]+row[2]), 1e-5)
		best := 0
		for j := range row {
			if row[j] > row[best] {
				best = j
			}
		}
		if int64(best) == test.y64[r] {
			ok++
		}
	}
	acc := float64(ok) / float64(test.rows)
	t.Logf("held-out accuracy %.4f, last batch loss %.4f", acc, us.Loss)
	require.GreaterOrEqual(t, acc, 0.97)
	require.Less(t, us.Loss, 0.2)
}

// A regression MLP with two outputs fits sin(x0)+0.5·x1 and x0·x1 to a mean
// squared error below 0.02 on held-out rows (the targets' variance is
// about 1.5).
func TestMLPRegression(t *testing.T) {
	data, test := waves(2000, 11), waves(500, 12)
	tr := newTrainer(t, train.MLP{Sizes: []int{2, 32, 32, 2}, Activation: train.Tanh, Output: train.Regression}, train.Options{LearningRate: 0.01})
	fit(t, tr, data, 40, 64)
	p := predictY(t, tr, test.all())
	var mse float64
	for i := range p {
		d := float64(p[i] - test.y32[i])
		mse += d * d
	}
	mse /= float64(len(p))
	t.Logf("held-out MSE %.5f", mse)
	require.Less(t, mse, 0.02)
}

// A two-tower model learns which synthetic users like which items: 0.9
// held-out accuracy, where the untrained model is near chance; and the
// served probability is the sigmoid of the dot product of the served
// embeddings.
func TestTwoTowerLearnsAffinity(t *testing.T) {
	data, test := affinity(5000, 13).split(4000)
	tr := newTrainer(t, train.TwoTower{User: []int{8, 16, 8}, Item: []int{6, 16, 8}, Activation: train.Tanh}, train.Options{LearningRate: 0.01, Seed: 2})
	before := accuracy(predictY(t, tr, test.all()), test.y32)
	fit(t, tr, data, 15, 64)
	out, err := tr.Predict(context.Background(), test.all())
	require.NoError(t, err)
	p, _ := out["y"].Tensor.Float32s()
	acc := accuracy(p, test.y32)
	t.Logf("held-out accuracy %.4f (before training %.4f)", acc, before)
	require.GreaterOrEqual(t, acc, 0.9)
	require.Less(t, before, 0.75)

	u, _ := out["user_embedding"].Tensor.Float32s()
	v, _ := out["item_embedding"].Tensor.Float32s()
	require.Equal(t, []int64{int64(test.rows), 8}, out["user_embedding"].Tensor.Shape)
	for r := 0; r < 10; r++ {
		var s float64
		for j := 0; j < 8; j++ {
			s += float64(u[8*r+j]) * float64(v[8*r+j])
		}
		require.InDelta(t, 1/(1+math.Exp(-s)), float64(p[r]), 1e-6)
	}
}

// One SGD step moves every parameter by exactly -lr times the gradient that
// the independent float64 reference computes: checked through the public
// API by comparing predictions of a logistic regression, whose gradient has
// a closed form: ∂L/∂w = mean((σ(z)-t)·x), ∂L/∂b = mean(σ(z)-t).
func TestSGDStepMatchesClosedForm(t *testing.T) {
	const lr = 0.5
	tr := newTrainer(t, train.LogisticRegression{Features: 2}, train.Options{Solver: train.SGD, LearningRate: lr, Seed: 3})
	x := []float32{1, 2, -1, 0.5, 0.3, -2}
	y := []float32{1, 0, 1}
	probe := map[string]serving.Tensor{"x": serving.NewTensor([]int64{3, 2}, []float32{1, 0, 0, 1, 0, 0})}
	// Read w and b back from predictions: σ⁻¹(p) at the unit vectors and 0.
	wb := func() (w0, w1, b float64) {
		p := predictY(t, tr, probe)
		logit := func(p float32) float64 { return math.Log(float64(p) / (1 - float64(p))) }
		b = logit(p[2])
		return logit(p[0]) - b, logit(p[1]) - b, b
	}
	w0, w1, b := wb()
	var g0, g1, gb float64
	for r := 0; r < 3; r++ {
		z := w0*float64(x[2*r]) + w1*float64(x[2*r+1]) + b
		e := 1/(1+math.Exp(-z)) - float64(y[r])
		g0 += e * float64(x[2*r]) / 3
		g1 += e * float64(x[2*r+1]) / 3
		gb += e / 3
	}
	us, err := tr.Update(context.Background(), map[string]serving.Tensor{"x": serving.NewTensor([]int64{3, 2}, x)}, serving.NewTensor([]int64{3}, y))
	require.NoError(t, err)
	require.Equal(t, int64(1), us.Step)
	require.InDelta(t, math.Sqrt(g0*g0+g1*g1+gb*gb), us.GradNorm, 1e-5)
	n0, n1, nb := wb()
	require.InDelta(t, w0-lr*g0, n0, 1e-4)
	require.InDelta(t, w1-lr*g1, n1, 1e-4)
	require.InDelta(t, b-lr*gb, nb, 1e-4)
}

// The same spec, options and seed give the same model and the same
// training trajectory; another seed gives another model.
func TestDeterministic(t *testing.T) {
	data := circles(256, 3)
	run := func(seed uint64) []float32 {
		tr := newTrainer(t, train.MLP{Sizes: []int{2, 8, 1}}, train.Options{Seed: seed})
		fit(t, tr, data, 2, 32)
		return predictY(t, tr, data.all())
	}
	a, b, c := run(5), run(5), run(6)
	require.Equal(t, a, b)
	require.NotEqual(t, a, c)
}

// Batches of any size up to MaxBatchRows train, including sizes that are
// not powers of two (padded inside) and a single row; the loss is a mean,
// so a batch and the same batch repeated twice give the same step.
func TestBatchSizes(t *testing.T) {
	data := circles(300, 4)
	tr := newTrainer(t, train.MLP{Sizes: []int{2, 4, 1}}, train.Options{MaxBatchRows: 300})
	for _, n := range []int{1, 2, 3, 7, 64, 100, 300} {
		in, y := data.batch(0, n)
		us, err := tr.Update(context.Background(), in, y)
		require.NoError(t, err, "batch of %d", n)
		require.Equal(t, n, us.Rows)
	}

	once := newTrainer(t, train.MLP{Sizes: []int{2, 4, 1}}, train.Options{Solver: train.SGD})
	twice := newTrainer(t, train.MLP{Sizes: []int{2, 4, 1}}, train.Options{Solver: train.SGD})
	in, y := data.batch(0, 5)
	x := in["x"].Data.([]float32)
	yy := y.Data.([]float32)
	in2 := map[string]serving.Tensor{"x": serving.NewTensor([]int64{10, 2}, append(append([]float32(nil), x...), x...))}
	y2 := serving.NewTensor([]int64{10}, append(append([]float32(nil), yy...), yy...))
	a, err := once.Update(context.Background(), in, y)
	require.NoError(t, err)
	b, err := twice.Update(context.Background(), in2, y2)
	require.NoError(t, err)
	require.InDelta(t, a.Loss, b.Loss, 1e-6)
	pa, pb := predictY(t, once, data.all()), predictY(t, twice, data.all())
	for i := range pa {
		require.InDelta(t, pa[i], pb[i], 1e-6)
	}
}

// L2 shrinks the weights: trained on the same batches, the model with L2
// ends with a weight vector (read back from its logits) at most 0.7 times
// as long as the model without.
func TestL2ShrinksWeights(t *testing.T) {
	data := separable(512, 4, 0.1, 5)
	plain := newTrainer(t, train.LogisticRegression{Features: 4}, train.Options{Solver: train.SGD, LearningRate: 0.5})
	reg := newTrainer(t, train.LogisticRegression{Features: 4}, train.Options{Solver: train.SGD, LearningRate: 0.5, L2: 0.1})
	fit(t, plain, data, 5, 64)
	fit(t, reg, data, 5, 64)
	norm := func(tr *train.Trainer) float64 {
		p := predictY(t, tr, map[string]serving.Tensor{"x": serving.NewTensor([]int64{5, 4}, []float32{
			1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0})})
		logit := func(p float32) float64 { return math.Log(float64(p) / (1 - float64(p))) }
		var s float64
		for i := 0; i < 4; i++ {
			w := logit(p[i]) - logit(p[4])
			s += w * w
		}
		return math.Sqrt(s)
	}
	np, nr := norm(plain), norm(reg)
	t.Logf("weight norm without L2 %.3f, with L2 %.3f", np, nr)
	require.Less(t, nr, 0.7*np)
}

// Clipping by value bounds each gradient element and clipping by norm
// bounds the whole gradient, so that one SGD step moves each parameter by
// lr·ClipValue (every raw element is larger) or all of them together by
// lr·ClipNorm; UpdateStats reports the norm before clipping.
func TestClipping(t *testing.T) {
	// Large inputs with targets opposite to the predictions give a
	// gradient far larger than the clip.
	x := serving.NewTensor([]int64{2, 2}, []float32{100, -100, -100, 100})
	y := serving.NewTensor([]int64{2}, []float32{0, 0})
	const lr, clip = 0.01, 0.1
	for _, tc := range []struct {
		name string
		opts train.Options
	}{
		{"value", train.Options{Solver: train.SGD, LearningRate: lr, ClipValue: clip}},
		{"norm", train.Options{Solver: train.SGD, LearningRate: lr, ClipNorm: clip}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTrainer(t, train.LogisticRegression{Features: 2}, tc.opts)
			before := logisticParams(t, tr, 2)
			us, err := tr.Update(context.Background(), map[string]serving.Tensor{"x": x}, y)
			require.NoError(t, err)
			require.True(t, us.Clipped)
			require.Greater(t, us.GradNorm, 10.0)
			after := logisticParams(t, tr, 2)
			var sq float64
			for i := range before {
				d := after[i] - before[i]
				sq += d * d
				if tc.name == "value" {
					require.InDelta(t, lr*clip, math.Abs(d), 1e-5, "parameter %d", i)
				}
			}
			if tc.name == "norm" {
				require.InDelta(t, lr*clip, math.Sqrt(sq), 1e-5)
			}
		})
	}
	tr := newTrainer(t, train.LogisticRegression{Features: 2}, train.Options{ClipNorm: 1e6, ClipValue: 1e6})
	us, err := tr.Update(context.Background(), map[string]serving.Tensor{"x": x}, y)
	require.NoError(t, err)
	require.False(t, us.Clipped)
}

// logisticParams reads a logistic regression's weights and bias back from
// its predictions: the logit at each unit vector minus the logit at 0.
func logisticParams(t *testing.T, tr *train.Trainer, n int) []float64 {
	t.Helper()
	probe := make([]float32, (n+1)*n)
	for i := 0; i < n; i++ {
		probe[i*n+i] = 1
	}
	p := predictY(t, tr, map[string]serving.Tensor{"x": serving.NewTensor([]int64{int64(n + 1), int64(n)}, probe)})
	logit := func(p float32) float64 { return math.Log(float64(p) / (1 - float64(p))) }
	b := logit(p[n])
	out := make([]float64, n+1)
	for i := 0; i < n; i++ {
		out[i] = logit(p[i]) - b
	}
	out[n] = b
	return out
}

// A learning rate so large that the step overflows float32 is refused with
// ErrDiverged, and the model keeps serving what it served before.
func TestDivergedStepRefused(t *testing.T) {
	tr := newTrainer(t, train.MLP{Sizes: []int{2, 1}, Output: train.Regression}, train.Options{Solver: train.SGD, LearningRate: 1e38})
	in := map[string]serving.Tensor{"x": serving.NewTensor([]int64{1, 2}, []float32{1e3, 1e3})}
	before := predictY(t, tr, in)
	_, err := tr.Update(context.Background(), in, serving.NewTensor([]int64{1}, []float32{1e6}))
	require.ErrorIs(t, err, train.ErrDiverged)
	require.Equal(t, before, predictY(t, tr, in))
	st := tr.Stats()
	require.Equal(t, int64(0), st.Step)
	require.Equal(t, int64(1), st.Diverged)
}
