package train_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/gorgonia/train"
)

func f32(shape []int64, v ...float32) serving.Tensor { return serving.NewTensor(shape, v) }

func state(t *testing.T, tr *train.Trainer) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, tr.Save(context.Background(), &b))
	return b.Bytes()
}

// Every bad input or target is refused with a typed error naming what was
// wrong, and leaves the trainer's whole state (parameters, solver state,
// step) as it was.
func TestUpdateRefusesBadInput(t *testing.T) {
	x2 := f32([]int64{2, 3}, 1, 2, 3, 4, 5, 6)
	binary := train.MLP{Sizes: []int{3, 4, 1}}
	multi := train.MLP{Sizes: []int{3, 4, 3}, Output: train.Multiclass}
	regr := train.MLP{Sizes: []int{3, 2}, Output: train.Regression}
	tower := train.TwoTower{User: []int{3, 2}, Item: []int{2, 2}}
	for _, tc := range []struct {
		name    string
		spec    train.Spec
		inputs  map[string]serving.Tensor
		targets serving.Tensor
		want    []error
		msg     string // a part of the message
	}{
		{"missing input", binary, map[string]serving.Tensor{}, f32([]int64{2}, 0, 1), []error{serving.ErrInput}, `"x"`},
		{"unknown input", binary, map[string]serving.Tensor{"x": x2, "z": x2}, f32([]int64{2}, 0, 1), []error{serving.ErrInput}, `"z"`},
		{"input type", binary, map[string]serving.Tensor{"x": serving.NewTensor([]int64{2, 3}, []int64{1, 2, 3, 4, 5, 6})}, f32([]int64{2}, 0, 1), []error{serving.ErrType}, "int64"},
		{"input rank", binary, map[string]serving.Tensor{"x": f32([]int64{6}, 1, 2, 3, 4, 5, 6)}, f32([]int64{2}, 0, 1), []error{serving.ErrShape}, "rank"},
		{"input width", binary, map[string]serving.Tensor{"x": f32([]int64{3, 2}, 1, 2, 3, 4, 5, 6)}, f32([]int64{3}, 0, 1, 1), []error{serving.ErrShape}, "[-1 3]"},
		{"input length", binary, map[string]serving.Tensor{"x": f32([]int64{2, 3}, 1, 2, 3)}, f32([]int64{2}, 0, 1), []error{serving.ErrShape}, "3 elements"},
		{"no rows", binary, map[string]serving.Tensor{"x": f32([]int64{0, 3})}, f32([]int64{0}), []error{serving.ErrShape}, "0 rows"},
		{"too many rows", binary, map[string]serving.Tensor{"x": f32([]int64{5, 3}, make([]float32, 15)...)}, f32([]int64{5}, 0, 0, 0, 0, 0), []error{serving.ErrTooLarge}, "at most 4"},
		{"NaN input", binary, map[string]serving.Tensor{"x": f32([]int64{2, 3}, 1, 2, 3, 4, float32(math.NaN()), 6)}, f32([]int64{2}, 0, 1), []error{serving.ErrInput}, "row 1, column 1"},
		{"Inf input", binary, map[string]serving.Tensor{"x": f32([]int64{2, 3}, float32(math.Inf(-1)), 2, 3, 4, 5, 6)}, f32([]int64{2}, 0, 1), []error{serving.ErrInput}, "finite"},
		{"target type", binary, map[string]serving.Tensor{"x": x2}, serving.NewTensor([]int64{2}, []int64{0, 1}), []error{train.ErrTarget, serving.ErrType}, "float32"},
		{"target nil", binary, map[string]serving.Tensor{"x": x2}, serving.Tensor{Shape: []int64{2}}, []error{train.ErrTarget, serving.ErrType}, "<nil>"},
		{"target rows", binary, map[string]serving.Tensor{"x": x2}, f32([]int64{3}, 0, 1, 1), []error{train.ErrTarget, serving.ErrShape}, "[2] or [2 1]"},
		{"target width", binary, map[string]serving.Tensor{"x": x2}, f32([]int64{2, 2}, 0, 1, 1, 0), []error{train.ErrTarget, serving.ErrShape}, "[2 2]"},
		{"target length", binary, map[string]serving.Tensor{"x": x2}, f32([]int64{2}, 1), []error{train.ErrTarget, serving.ErrShape}, "1 elements"},
		{"target NaN", binary, map[string]serving.Tensor{"x": x2}, f32([]int64{2}, 0, float32(math.NaN())), []error{train.ErrTarget, serving.ErrInput}, "NaN at row 1"},
		{"target above 1", binary, map[string]serving.Tensor{"x": x2}, f32([]int64{2}, 0, 1.5), []error{train.ErrTarget, serving.ErrInput}, "[0, 1]"},
		{"target below 0", binary, map[string]serving.Tensor{"x": x2}, f32([]int64{2}, -0.1, 1), []error{train.ErrTarget, serving.ErrInput}, "[0, 1]"},
		{"class type", multi, map[string]serving.Tensor{"x": x2}, f32([]int64{2}, 0, 1), []error{train.ErrTarget, serving.ErrType}, "int64"},
		{"class too large", multi, map[string]serving.Tensor{"x": x2}, serving.NewTensor([]int64{2}, []int64{0, 3}), []error{train.ErrTarget, serving.ErrInput}, "class 3 at row 1"},
		{"class negative", multi, map[string]serving.Tensor{"x": x2}, serving.NewTensor([]int64{2}, []int64{-1, 0}), []error{train.ErrTarget, serving.ErrInput}, "[0, 3)"},
		{"regression width", regr, map[string]serving.Tensor{"x": x2}, f32([]int64{2}, 0, 1), []error{train.ErrTarget, serving.ErrShape}, "[2 2]"},
		{"regression Inf", regr, map[string]serving.Tensor{"x": x2}, f32([]int64{2, 2}, 0, 1, 2, float32(math.Inf(1))), []error{train.ErrTarget, serving.ErrInput}, "row 1, column 1"},
		{"tower rows differ", tower, map[string]serving.Tensor{"user": x2, "item": f32([]int64{1, 2}, 1, 2)}, f32([]int64{2}, 0, 1), []error{serving.ErrShape}, `"user"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTrainer(t, tc.spec, train.Options{MaxBatchRows: 4})
			before := state(t, tr)
			_, err := tr.Update(context.Background(), tc.inputs, tc.targets)
			require.Error(t, err)
			for _, w := range tc.want {
				require.ErrorIs(t, err, w)
			}
			require.Contains(t, err.Error(), tc.msg)
			if errors.Is(err, train.ErrTarget) {
				var te *train.TargetError
				require.ErrorAs(t, err, &te)
			} else {
				var ie *serving.InputError
				require.ErrorAs(t, err, &ie)
			}
			require.Equal(t, before, state(t, tr), "a refused update changed the state")
			st := tr.Stats()
			require.Equal(t, int64(1), st.InputErrors)
			require.Equal(t, int64(0), st.Step)
		})
	}
}

func TestPredictRefusesBadInput(t *testing.T) {
	tr := newTrainer(t, train.TwoTower{User: []int{3, 2}, Item: []int{2, 2}}, train.Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		inputs map[string]serving.Tensor
		want   error
	}{
		{"missing", map[string]serving.Tensor{"user": f32([]int64{1, 3}, 1, 2, 3)}, serving.ErrInput},
		{"width", map[string]serving.Tensor{"user": f32([]int64{1, 2}, 1, 2), "item": f32([]int64{1, 2}, 1, 2)}, serving.ErrShape},
		{"rows differ", map[string]serving.Tensor{"user": f32([]int64{1, 3}, 1, 2, 3), "item": f32([]int64{2, 2}, 1, 2, 3, 4)}, serving.ErrShape},
		{"type", map[string]serving.Tensor{"user": serving.NewTensor([]int64{1, 3}, []float64{1, 2, 3}), "item": f32([]int64{1, 2}, 1, 2)}, serving.ErrType},
	} {
		_, err := tr.Predict(ctx, tc.inputs)
		require.ErrorIs(t, err, tc.want, tc.name)
	}
	require.Equal(t, int64(4), tr.Stats().PredictErrors)

	// Zero rows is a valid (empty) request for Predict.
	out, err := tr.Predict(ctx, map[string]serving.Tensor{"user": f32([]int64{0, 3}), "item": f32([]int64{0, 2})})
	require.NoError(t, err)
	require.Equal(t, []int64{0, 1}, out["y"].Tensor.Shape)
	require.Equal(t, []int64{0, 2}, out["user_embedding"].Tensor.Shape)
}

func TestNewRefusesBadSpecAndOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec train.Spec
		opts train.Options
		want error
		msg  string
	}{
		{"nil spec", nil, train.Options{}, train.ErrSpec, "no spec"},
		{"no features", train.LogisticRegression{}, train.Options{}, train.ErrSpec, "0 features"},
		{"one size", train.MLP{Sizes: []int{3}}, train.Options{}, train.ErrSpec, "want 2 to"},
		{"zero size", train.MLP{Sizes: []int{3, 0, 1}}, train.Options{}, train.ErrSpec, "every size"},
		{"huge size", train.MLP{Sizes: []int{3, 1 << 30, 1}}, train.Options{}, train.ErrSpec, "every size"},
		{"too many params", train.MLP{Sizes: []int{1 << 20, 1 << 20, 1}}, train.Options{}, train.ErrSpec, "parameters"},
		{"binary width", train.MLP{Sizes: []int{3, 2}}, train.Options{}, train.ErrSpec, "last size of 1"},
		{"multiclass width", train.MLP{Sizes: []int{3, 1}, Output: train.Multiclass}, train.Options{}, train.ErrSpec, "at least 2"},
		{"bad output", train.MLP{Sizes: []int{3, 1}, Output: 9}, train.Options{}, train.ErrSpec, "output(9)"},
		{"bad activation", train.MLP{Sizes: []int{3, 1}, Activation: 7}, train.Options{}, train.ErrSpec, "activation(7)"},
		{"towers disagree", train.TwoTower{User: []int{3, 4}, Item: []int{2, 5}}, train.Options{}, train.ErrSpec, "embedding size"},
		{"no item tower", train.TwoTower{User: []int{3, 4}}, train.Options{}, train.ErrSpec, "item sizes"},
		{"negative rate", train.LogisticRegression{Features: 2}, train.Options{LearningRate: -1}, train.ErrOptions, "learning rate"},
		{"NaN L2", train.LogisticRegression{Features: 2}, train.Options{L2: math.NaN()}, train.ErrOptions, "L2"},
		{"Inf clip", train.LogisticRegression{Features: 2}, train.Options{ClipNorm: math.Inf(1)}, train.ErrOptions, "clip norm"},
		{"momentum 1", train.LogisticRegression{Features: 2}, train.Options{Momentum: 1}, train.ErrOptions, "momentum"},
		{"beta2 negative", train.LogisticRegression{Features: 2}, train.Options{Beta2: -0.5}, train.ErrOptions, "beta2"},
		{"bad solver", train.LogisticRegression{Features: 2}, train.Options{Solver: 5}, train.ErrOptions, "solver(5)"},
		{"negative batch", train.LogisticRegression{Features: 2}, train.Options{MaxBatchRows: -1}, train.ErrOptions, "max batch rows"},
		{"reserved metadata", train.LogisticRegression{Features: 2}, train.Options{Metadata: map[string]string{"train.steps": "1"}}, train.ErrOptions, "train.steps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := train.New(tc.spec, tc.opts)
			require.ErrorIs(t, err, tc.want)
			require.Contains(t, err.Error(), tc.msg)
		})
	}
}

func TestClosed(t *testing.T) {
	tr, err := train.New(train.LogisticRegression{Features: 2}, train.Options{})
	require.NoError(t, err)
	ctx := context.Background()
	in := map[string]serving.Tensor{"x": f32([]int64{1, 2}, 1, 2)}
	_, err = tr.Update(ctx, in, f32([]int64{1}, 1))
	require.NoError(t, err)
	require.NoError(t, tr.Close())
	require.NoError(t, tr.Close(), "a second Close")
	_, err = tr.Update(ctx, in, f32([]int64{1}, 1))
	require.ErrorIs(t, err, serving.ErrClosed)
	_, err = tr.Predict(ctx, in)
	require.ErrorIs(t, err, serving.ErrClosed)
	require.ErrorIs(t, tr.Save(ctx, &bytes.Buffer{}), serving.ErrClosed)
	require.ErrorIs(t, tr.Export(&bytes.Buffer{}), serving.ErrClosed)
	require.Equal(t, int64(1), tr.Stats().Step, "Stats still reads after Close")
}

// A context that has ended stops Update before it changes anything.
func TestUpdateCanceled(t *testing.T) {
	tr := newTrainer(t, train.LogisticRegression{Features: 2}, train.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	before := state(t, tr)
	_, err := tr.Update(ctx, map[string]serving.Tensor{"x": f32([]int64{1, 2}, 1, 2)}, f32([]int64{1}, 1))
	require.ErrorIs(t, err, context.Canceled)
	_, err = tr.Predict(ctx, map[string]serving.Tensor{"x": f32([]int64{1, 2}, 1, 2)})
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, tr.Save(ctx, &bytes.Buffer{}), context.Canceled)
	require.Equal(t, before, state(t, tr))
	require.Equal(t, int64(1), tr.Stats().Canceled)
}
