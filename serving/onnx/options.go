package onnx

import (
	"context"

	"github.com/quiverml/quiver/serving"

	"errors"
	"fmt"
	"log/slog"
)

// ErrProviderUnavailable is returned when the requested execution provider
// is not available in the loaded ONNX Runtime and CPU fallback was not
// allowed.
var ErrProviderUnavailable = errors.New("onnx: execution provider unavailable")

// Provider names an ONNX Runtime execution provider.
type Provider string

// Execution providers.
const (
	ProviderCPU      Provider = "CPU"
	ProviderCUDA     Provider = "CUDA"
	ProviderTensorRT Provider = "TensorRT"
)

// GraphOptimization is ONNX Runtime's graph optimisation level.
type GraphOptimization int

// Graph optimisation levels. The zero value, OptimizeDefault, means OptimizeAll.
const (
	OptimizeDefault GraphOptimization = iota
	OptimizeNone
	OptimizeBasic
	OptimizeExtended
	OptimizeAll
)

// Options configure a model loaded on ONNX Runtime. The zero value suits a
// small machine: one intra-op and one inter-op thread per session (run
// concurrency comes from the batcher's batches in flight, not from threads
// fighting over two cores), all graph optimisations, the CPU memory arena on,
// the CPU execution provider, no warm-up.
type Options struct {
	// Name identifies the model in Info, logs and metrics. Default: the
	// file name for Load, "model" for LoadBytes.
	Name string
	// LibraryPath is the ONNX Runtime shared library. Default: the
	// ONNXRUNTIME_LIB environment variable, then the usual system paths.
	// The first model loaded in a process fixes the library.
	LibraryPath string
	// IntraOpThreads is the number of threads one operator may use. Default 1.
	IntraOpThreads int
	// InterOpThreads is the number of threads running independent operators
	// in parallel. Default 1.
	InterOpThreads int
	// GraphOptimization is the graph optimisation level. Default OptimizeAll.
	GraphOptimization GraphOptimization
	// DisableCPUArena turns off ONNX Runtime's CPU memory arena, trading some
	// speed for memory returned to the system after each run. Default: arena on.
	DisableCPUArena bool
	// Provider is the execution provider. Default ProviderCPU.
	Provider Provider
	// CUDA configures ProviderCUDA (and the CUDA fallback of TensorRT).
	CUDA CUDAOptions
	// TensorRT configures ProviderTensorRT.
	TensorRT TensorRTOptions
	// AllowCPUFallback lets a model whose provider is unavailable run on the
	// CPU instead of failing with ErrProviderUnavailable. The fallback is
	// logged and reported by Info().Provider.
	AllowCPUFallback bool
	// WarmUp runs the model once on zero-filled inputs after loading, so
	// the first request does not pay for lazy initialisation. Dynamic axes
	// take the sizes in WarmUpDims, else 1; inputs named in WarmUpInputs
	// are used as given. A warm-up failure fails the load.
	WarmUp bool
	// Batching decides whether a Batcher may merge requests for this
	// model. Default BatchAuto. The batchability probe sizes dynamic
	// non-batch axes and fills inputs as the warm-up does (WarmUpDims,
	// WarmUpInputs).
	Batching Batching
	// WarmUpDims sizes dynamic axes for the warm-up run, by the axis's
	// symbolic name in the model ("len": 16), for models that refuse an
	// axis of length 1 (reflect padding, windows, convolutions without
	// padding). Axes it does not name take 1.
	WarmUpDims map[string]int64
	// WarmUpInputs gives whole tensors for some inputs of the warm-up run
	// (token ids that must be valid, masks that must not be all zero); the
	// others are zero-filled. Each is checked against the model's inputs.
	WarmUpInputs map[string]serving.Tensor
	// Logger receives load, fallback and warm-up messages. Default: slog.Default().
	Logger *slog.Logger
}

// Batching says how a model's batchability is decided (Info.Batchable).
type Batching int

// Batching modes. The zero value, BatchAuto, decides from the model.
const (
	// BatchAuto batches when every named first axis carries one name;
	// when names differ (converters name each dynamic axis afresh), a
	// probe at load runs the model at batch 1 and 2 on generated inputs
	// and batches when every output's first axis follows the batch and
	// each row equals its batch-1 run.
	BatchAuto Batching = iota
	// BatchAlways batches whenever the model's structure allows it (every
	// input and output a tensor with a dynamic first axis), whatever the
	// names say, without a probe.
	BatchAlways
	// BatchNever runs every request alone.
	BatchNever
)

// CUDAOptions configure the CUDA execution provider.
type CUDAOptions struct {
	// DeviceID selects the GPU. Default 0.
	DeviceID int
	// MemoryLimit caps the provider's memory arena in bytes. Default 0: no limit.
	MemoryLimit uint64
	// ConvAlgoSearch is cuDNN's convolution algorithm search: "EXHAUSTIVE",
	// "HEURISTIC" or "DEFAULT". Default "" leaves ONNX Runtime's default
	// (EXHAUSTIVE).
	ConvAlgoSearch string
}

// TensorRTOptions configure the TensorRT execution provider.
type TensorRTOptions struct {
	// DeviceID selects the GPU. Default 0.
	DeviceID int
	// FP16 lets TensorRT build float16 engines. Default false.
	FP16 bool
	// EngineCachePath, when set, caches built engines in that folder.
	EngineCachePath string
	// MaxWorkspaceSize in bytes. Default 0: ONNX Runtime's default.
	MaxWorkspaceSize uint64
}

func (o Options) withDefaults() (Options, error) {
	for name, d := range o.WarmUpDims {
		if d < 0 {
			return o, fmt.Errorf("onnx: WarmUpDims[%q] is %d, want a size >= 0", name, d)
		}
	}
	if o.Batching < BatchAuto || o.Batching > BatchNever {
		return o, fmt.Errorf("onnx: unknown Batching %d, want BatchAuto, BatchAlways or BatchNever", o.Batching)
	}
	if o.IntraOpThreads < 0 || o.InterOpThreads < 0 {
		return o, fmt.Errorf("onnx: thread counts must be >= 0, got intra-op %d, inter-op %d", o.IntraOpThreads, o.InterOpThreads)
	}
	if o.IntraOpThreads == 0 {
		o.IntraOpThreads = 1
	}
	if o.InterOpThreads == 0 {
		o.InterOpThreads = 1
	}
	if o.Provider == "" {
		o.Provider = ProviderCPU
	}
	switch o.Provider {
	case ProviderCPU, ProviderCUDA, ProviderTensorRT:
	default:
		return o, fmt.Errorf("onnx: unknown execution provider %q, want CPU, CUDA or TensorRT", o.Provider)
	}
	switch o.CUDA.ConvAlgoSearch {
	case "", "EXHAUSTIVE", "HEURISTIC", "DEFAULT":
	default:
		return o, fmt.Errorf("onnx: CUDA.ConvAlgoSearch %q, want EXHAUSTIVE, HEURISTIC or DEFAULT", o.CUDA.ConvAlgoSearch)
	}
	if o.GraphOptimization < OptimizeDefault || o.GraphOptimization > OptimizeAll {
		return o, fmt.Errorf("onnx: unknown graph optimization level %d", o.GraphOptimization)
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
