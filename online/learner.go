package online

import (
	"context"
	"io"

	"github.com/quiverml/quiver/serving"
)

// Learner is the model the loop trains: it answers from its current
// parameters, learns from one mini-batch at a time, and writes itself as
// an ONNX file that a serving engine loads. The loop calls Update and
// Export from one goroutine at a time, and Predict possibly meanwhile (the
// host may serve through the learner too), so Predict must be safe
// concurrently with Update.
//
// Inputs are the loop's Options.Input name mapped to a float32 tensor of
// shape [rows, width]; targets a float32 tensor of shape [rows, 1] holding
// the labels 0 and 1. Predict's answer holds, under Options.Output, one
// probability of the positive class per row.
//
// A trainer whose Update also returns statistics fits through
// LearnerFrom.
type Learner interface {
	Predict(ctx context.Context, inputs map[string]serving.Tensor) (map[string]serving.Value, error)
	Update(ctx context.Context, inputs map[string]serving.Tensor, targets serving.Tensor) error
	Export(w io.Writer) error
}

// Trainer is a Learner whose Update also returns statistics of type S (a
// loss, a step count), which the loop does not read. LearnerFrom adapts
// it.
type Trainer[S any] interface {
	Predict(ctx context.Context, inputs map[string]serving.Tensor) (map[string]serving.Value, error)
	Update(ctx context.Context, inputs map[string]serving.Tensor, targets serving.Tensor) (S, error)
	Export(w io.Writer) error
}

// LearnerFrom returns t as a Learner whose Update drops t's statistics.
func LearnerFrom[S any](t Trainer[S]) Learner { return trainerLearner[S]{t} }

type trainerLearner[S any] struct{ t Trainer[S] }

func (l trainerLearner[S]) Predict(ctx context.Context, in map[string]serving.Tensor) (map[string]serving.Value, error) {
	return l.t.Predict(ctx, in)
}

func (l trainerLearner[S]) Update(ctx context.Context, in map[string]serving.Tensor, targets serving.Tensor) error {
	_, err := l.t.Update(ctx, in, targets)
	return err
}

func (l trainerLearner[S]) Export(w io.Writer) error { return l.t.Export(w) }
