package gorgonia

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"

	"github.com/quiverml/quiver/serving"
)

// Batching says how a model's batchability is decided (Info.Batchable).
type Batching int

// Batching modes. The zero value, BatchAuto, decides from the model.
const (
	// BatchAuto batches when every input and output is a tensor with a
	// dynamic first axis and every named first axis carries the same name
	// (unnamed ones count as the same). When names differ, the model runs
	// unbatched: this engine does not probe.
	BatchAuto Batching = iota
	// BatchAlways batches whenever the structure allows it (every input
	// and output a tensor with a dynamic first axis), whatever the names.
	BatchAlways
	// BatchNever runs every request alone.
	BatchNever
)

// Options configure a model loaded on this engine. The zero value keeps
// compiled graphs for 8 input shapes, up to GOMAXPROCS idle machines per
// shape of at most 1 GiB of buffers each, decides batching from the model,
// and skips warm-up.
type Options struct {
	// Name identifies the model in Info, logs and metrics. Default: the
	// file name for Load, "model" for LoadBytes.
	Name string
	// Batching decides whether a Batcher may merge requests for this
	// model. Default BatchAuto.
	Batching Batching
	// MaxShapes bounds how many distinct sets of input shapes keep their
	// compiled graphs; the least recently used set is dropped beyond it.
	// Requests behind a Batcher come in a few batch sizes, so a few
	// shapes suffice. Default 8.
	MaxShapes int
	// MaxIdle bounds the idle machines (compiled graph plus buffers) kept
	// per shape for concurrent requests; a request that finds none idle
	// compiles one. Default runtime.GOMAXPROCS(0).
	MaxIdle int
	// MaxMachineBytes bounds the memory of one machine's buffers (every
	// intermediate result, and a convolution's working memory); a request
	// whose shapes need more fails with serving.ErrTooLarge. Default 1 GiB.
	MaxMachineBytes int64
	// WarmUp compiles and runs the model once at load on zero inputs, so
	// that a model whose graph cannot be built fails at load and the
	// first request does not pay for compiling. Dynamic axes take the
	// sizes in WarmUpDims, else 1.
	WarmUp bool
	// WarmUpDims sizes dynamic axes for the warm-up run, by the axis's
	// symbolic name in the model.
	WarmUpDims map[string]int64
	// Logger receives load and warm-up messages. Default: slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Batching < BatchAuto || o.Batching > BatchNever {
		return o, fmt.Errorf("serving/gorgonia: unknown Batching %d, want BatchAuto, BatchAlways or BatchNever", o.Batching)
	}
	if o.MaxShapes < 0 || o.MaxIdle < 0 || o.MaxMachineBytes < 0 {
		return o, fmt.Errorf("serving/gorgonia: MaxShapes %d, MaxIdle %d and MaxMachineBytes %d must be >= 0", o.MaxShapes, o.MaxIdle, o.MaxMachineBytes)
	}
	for name, d := range o.WarmUpDims {
		if d < 0 {
			return o, fmt.Errorf("serving/gorgonia: WarmUpDims[%q] is %d, want a size >= 0", name, d)
		}
	}
	if o.MaxShapes == 0 {
		o.MaxShapes = 8
	}
	if o.MaxMachineBytes == 0 {
		o.MaxMachineBytes = 1 << 30
	}
	if o.MaxIdle == 0 {
		o.MaxIdle = runtime.GOMAXPROCS(0)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// Opener returns a function that loads model files with opts, naming each
// model name unless opts.Name is set: the shape of function that callers
// opening models by path take, such as registry.FileLoader.
func Opener(opts Options) func(ctx context.Context, path, name string) (serving.Model, error) {
	return func(ctx context.Context, path, name string) (serving.Model, error) {
		o := opts
		if o.Name == "" {
			o.Name = name
		}
		m, err := Load(ctx, path, o)
		if err != nil {
			return nil, err
		}
		return m, nil
	}
}
