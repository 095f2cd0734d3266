package train

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"strings"
)

// Sentinel errors, checked with errors.Is. Bad inputs of Update and Predict
// are *serving.InputError values matching serving.ErrShape, serving.ErrType,
// serving.ErrInput or serving.ErrTooLarge; bad targets match ErrTarget too.
var (
	// ErrSpec reports a model spec that New cannot build.
	ErrSpec = errors.New("train: invalid spec")
	// ErrOptions reports an Options value out of range.
	ErrOptions = errors.New("train: invalid options")
	// ErrTarget reports targets of the wrong type, shape or value (NaN,
	// a probability outside [0, 1], a class index out of range).
	ErrTarget = errors.New("train: bad targets")
	// ErrDiverged reports an update whose loss, gradient or new parameters
	// are not finite. The step is not applied: the trainer keeps the state
	// it had before the update. Lower the learning rate or clip gradients.
	ErrDiverged = errors.New("train: diverged")
	// ErrFormat reports a state file that Load cannot read: wrong magic,
	// unknown version, a bad checksum, or values out of range.
	ErrFormat = errors.New("train: bad state file")
)

// Solver chooses the optimisation algorithm.
type Solver uint8

// Solvers. The zero value is Adam.
const (
	// Adam is adaptive moment estimation with bias correction (Kingma and
	// Ba): m = β1·m + (1-β1)·g, v = β2·v + (1-β2)·g², w -= lr·m̂/(√v̂ + ε).
	Adam Solver = iota
	// SGD is plain stochastic gradient descent: w -= lr·g.
	SGD
	// Momentum is SGD with heavy-ball momentum: v = μ·v + g, w -= lr·v.
	Momentum
)

func (s Solver) String() string {
	switch s {
	case Adam:
		return "adam"
	case SGD:
		return "sgd"
	case Momentum:
		return "momentum"
	}
	return fmt.Sprintf("solver(%d)", uint8(s))
}

// Options configure a Trainer. The zero value gives the defaults documented
// on each field. Every field but Logger is part of the trainer's state: Save
// writes it and Load restores it.
type Options struct {
	// Name is the model's name in Info, exports and metrics. Default: the
	// spec's kind ("logistic_regression", "mlp", "two_tower"); for an
	// ONNXModel, the model's graph name, else "onnx_model".
	Name string
	// Seed makes the initial parameters: the same spec, options and seed
	// always give the same model. Default 0 (a fixed seed like any other).
	// An ONNXModel starts from the model's own parameters instead.
	Seed uint64
	// Solver is the optimisation algorithm. Default Adam.
	Solver Solver
	// LearningRate is the step size. Default 0.001 for Adam, 0.01 for SGD
	// and Momentum.
	LearningRate float64
	// Momentum is μ of the Momentum solver, in (0, 1). Default 0.9 (zero
	// means the default; SGD is the solver without momentum).
	Momentum float64
	// Beta1 and Beta2 are Adam's decay rates for the first and second
	// moments, in (0, 1). Defaults 0.9 and 0.999 (zero means the default).
	Beta1, Beta2 float64
	// Epsilon is Adam's denominator term. Default 1e-8.
	Epsilon float64
	// L2 adds L2/2·‖W‖² over every weight matrix (not the biases) to the
	// loss, that is L2·W to their gradients. Default 0 (none).
	L2 float64
	// ClipValue, when positive, clamps each element of the gradient (L2
	// term included) to [-ClipValue, ClipValue]. Default 0 (no clipping).
	ClipValue float64
	// ClipNorm, when positive, rescales the whole gradient (every
	// parameter together, after ClipValue) so that its L2 norm is at most
	// ClipNorm. Default 0 (no clipping).
	ClipNorm float64
	// MaxBatchRows is the most rows one Update accepts; a larger batch is
	// refused with an error matching serving.ErrTooLarge. Default 4096.
	// The loss is the mean over the batch's rows, so the learning rate
	// does not depend on the batch size.
	MaxBatchRows int
	// Version is the model version reported by Info and written to
	// exported ONNX files. Default 0.
	Version int64
	// Metadata is copied to Info.Custom and to the metadata of exported
	// ONNX files, beside the trainer's own keys (MetaSteps, MetaRows,
	// MetaLoss), which it may not use.
	Metadata map[string]string
	// Logger receives warnings (a refused, diverged step). Default
	// slog.Default().
	Logger *slog.Logger
}

// Metadata keys the trainer sets in Info.Custom and in exported files.
const (
	// MetaSteps holds the number of steps applied, in decimal.
	MetaSteps = "train.steps"
	// MetaRows holds the number of rows trained on, in decimal.
	MetaRows = "train.rows"
	// MetaLoss holds the loss of the last step (the mean over its batch,
	// before the step was applied), as strconv.FormatFloat(x, 'g', -1, 64).
	MetaLoss = "train.loss"
)

const (
	defaultMaxBatchRows = 4096
	maxMaxBatchRows     = 1 << 20
)

// withDefaults returns o with every zero field that has a default set to
// it, after checking the fields that have a range.
func (o Options) withDefaults() (Options, error) {
	bad := func(format string, args ...any) (Options, error) {
		return o, fmt.Errorf("%w: "+format, append([]any{ErrOptions}, args...)...)
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	if o.Solver > Momentum {
		return bad("got solver %v, want adam, sgd or momentum", o.Solver)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"learning rate", o.LearningRate}, {"epsilon", o.Epsilon}, {"L2", o.L2}, {"clip value", o.ClipValue}, {"clip norm", o.ClipNorm}} {
		if !finite(f.v) || f.v < 0 {
			return bad("got %s %v, want a finite value >= 0", f.name, f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"momentum", o.Momentum}, {"beta1", o.Beta1}, {"beta2", o.Beta2}} {
		if !finite(f.v) || f.v < 0 || f.v >= 1 {
			return bad("got %s %v, want a value in [0, 1)", f.name, f.v)
		}
	}
	if o.MaxBatchRows < 0 || o.MaxBatchRows > maxMaxBatchRows {
		return bad("got max batch rows %d, want 0 (default %d) to %d", o.MaxBatchRows, defaultMaxBatchRows, maxMaxBatchRows)
	}
	for k := range o.Metadata {
		if strings.HasPrefix(k, "train.") {
			return bad("metadata key %q: the prefix \"train.\" is the trainer's own", k)
		}
	}
	if o.LearningRate == 0 {
		o.LearningRate = 0.01
		if o.Solver == Adam {
			o.LearningRate = 0.001
		}
	}
	if o.Momentum == 0 {
		o.Momentum = 0.9
	}
	if o.Beta1 == 0 {
		o.Beta1 = 0.9
	}
	if o.Beta2 == 0 {
		o.Beta2 = 0.999
	}
	if o.Epsilon == 0 {
		o.Epsilon = 1e-8
	}
	if o.MaxBatchRows == 0 {
		o.MaxBatchRows = defaultMaxBatchRows
	}
	o.Metadata = maps.Clone(o.Metadata)
	return o, nil
}
