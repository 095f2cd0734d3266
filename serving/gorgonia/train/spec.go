package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Spec describes a model architecture: LogisticRegression, MLP, TwoTower,
// or ONNXModel (an ONNX model's own).
// The set is closed; New refuses anything else.
type Spec interface {
	// arch checks the spec and lays out its parameters.
	arch() (*arch, error)
}

// Activation is the nonlinearity between hidden layers.
type Activation uint8

// Activations. The zero value is ReLU.
const (
	ReLU Activation = iota
	Tanh
)

func (a Activation) String() string {
	switch a {
	case ReLU:
		return "relu"
	case Tanh:
		return "tanh"
	}
	return fmt.Sprintf("activation(%d)", uint8(a))
}

// Output says what an MLP predicts, and so which loss trains it.
type Output uint8

// Outputs. The zero value is Binary.
const (
	// Binary predicts one probability per row (sigmoid of one logit) and
	// trains with binary cross-entropy on the logit. Targets are float32 in
	// [0, 1], shape [rows] or [rows, 1].
	Binary Output = iota
	// Multiclass predicts a probability per class (softmax of the logits)
	// and trains with softmax cross-entropy. Targets are int64 class
	// indices in [0, classes), shape [rows] or [rows, 1].
	Multiclass
	// Regression predicts the last layer's values as they are and trains
	// with the mean squared error. Targets are float32 of shape
	// [rows, outputs], or [rows] when there is one output.
	Regression
)

func (o Output) String() string {
	switch o {
	case Binary:
		return "binary"
	case Multiclass:
		return "multiclass"
	case Regression:
		return "regression"
	}
	return fmt.Sprintf("output(%d)", uint8(o))
}

// LogisticRegression is a linear model from Features inputs to one
// probability: input "x" [batch, Features], output "y" [batch, 1], binary
// cross-entropy loss. It is the MLP {Features, 1} with a Binary output.
type LogisticRegression struct {
	Features int
}

// MLP is a multi-layer perceptron: input "x" [batch, Sizes[0]], fully
// connected layers of the given sizes with Activation between them (none
// after the last), output "y" [batch, Sizes[len-1]] read according to
// Output. A Binary output needs a last size of 1, a Multiclass output at
// least 2.
type MLP struct {
	Sizes      []int
	Activation Activation
	Output     Output
}

// TwoTower is an embedding model for user-item affinity: input "user"
// [batch, User[0]] goes through the user tower (fully connected layers of
// sizes User, Activation between them, none after the last), input "item"
// [batch, Item[0]] through the item tower, and the output "y" [batch, 1] is
// the sigmoid of the dot product of the two embeddings, trained with binary
// cross-entropy on the dot product. The embeddings are outputs too:
// "user_embedding" and "item_embedding", each [batch, d], where d is the
// last size of both towers (they must agree).
type TwoTower struct {
	User       []int
	Item       []int
	Activation Activation
}

// Limits on a model's size, so that a spec (or a state file) cannot ask
// for more memory than a process can hold.
const (
	maxWidth  = 1 << 20 // features or units in one layer
	maxLayers = 64      // layers in one tower
	maxParams = 1 << 28 // parameters in a model (1 GiB of float32)
)

type kind uint8

const (
	kindLogistic kind = 1
	kindMLP      kind = 2
	kindTwoTower kind = 3
)

// arch is a validated spec: towers of dense layers and the parameters'
// layout. Parameters are ordered tower by tower, layer by layer, the weight
// matrix (in x out, row-major, as ONNX Gemm's B) before the bias (out).
type arch struct {
	kind   kind
	act    Activation
	output Output
	towers []tower   // built-in models
	onnx   *imported // ONNXModel
	params []paramShape
}

type tower struct {
	input  string // the input's name
	sizes  []int
	layers []layer
}

type layer struct {
	in, out int
	w, b    int // indices of the weight and bias in arch.params
}

type paramShape struct {
	dims   []int // a built-in weight matrix is {in, out}, a bias {out}
	weight bool  // L2 applies: a weight matrix, not a bias
}

func (p paramShape) size() int {
	n := 1
	for _, d := range p.dims {
		n *= d
	}
	return n
}

func (s LogisticRegression) arch() (*arch, error) {
	if s.Features <= 0 || s.Features > maxWidth {
		return nil, fmt.Errorf("%w: logistic regression: got %d features, want 1 to %d", ErrSpec, s.Features, maxWidth)
	}
	return newArch(kindLogistic, ReLU, Binary, tower{input: "x", sizes: []int{s.Features, 1}})
}

func (s MLP) arch() (*arch, error) {
	if s.Output > Regression {
		return nil, fmt.Errorf("%w: mlp: got output %v, want binary, multiclass or regression", ErrSpec, s.Output)
	}
	if err := checkSizes("mlp", "sizes", s.Sizes); err != nil {
		return nil, err
	}
	last := s.Sizes[len(s.Sizes)-1]
	switch {
	case s.Output == Binary && last != 1:
		return nil, fmt.Errorf("%w: mlp: binary output needs a last size of 1, got sizes %v", ErrSpec, s.Sizes)
	case s.Output == Multiclass && last < 2:
		return nil, fmt.Errorf("%w: mlp: multiclass output needs a last size of at least 2, got sizes %v", ErrSpec, s.Sizes)
	}
	return newArch(kindMLP, s.Activation, s.Output, tower{input: "x", sizes: slices.Clone(s.Sizes)})
}

func (s TwoTower) arch() (*arch, error) {
	if err := checkSizes("two-tower", "user sizes", s.User); err != nil {
		return nil, err
	}
	if err := checkSizes("two-tower", "item sizes", s.Item); err != nil {
		return nil, err
	}
	if u, i := s.User[len(s.User)-1], s.Item[len(s.Item)-1]; u != i {
		return nil, fmt.Errorf("%w: two-tower: user embedding size %d differs from item embedding size %d, want equal last sizes", ErrSpec, u, i)
	}
	return newArch(kindTwoTower, s.Activation, Binary,
		tower{input: "user", sizes: slices.Clone(s.User)},
		tower{input: "item", sizes: slices.Clone(s.Item)})
}

func checkSizes(model, what string, sizes []int) error {
	if len(sizes) < 2 || len(sizes) > maxLayers+1 {
		return fmt.Errorf("%w: %s: got %d %s %v, want 2 to %d (inputs, hidden..., outputs)", ErrSpec, model, len(sizes), what, sizes, maxLayers+1)
	}
	for _, n := range sizes {
		if n <= 0 || n > maxWidth {
			return fmt.Errorf("%w: %s: %s %v: every size must be 1 to %d", ErrSpec, model, what, sizes, maxWidth)
		}
	}
	return nil
}

func newArch(k kind, act Activation, out Output, towers ...tower) (*arch, error) {
	if act > Tanh {
		return nil, fmt.Errorf("%w: got activation %v, want relu or tanh", ErrSpec, act)
	}
	a := &arch{kind: k, act: act, output: out}
	total := 0
	for _, t := range towers {
		for i := 0; i+1 < len(t.sizes); i++ {
			in, o := t.sizes[i], t.sizes[i+1]
			t.layers = append(t.layers, layer{in: in, out: o, w: len(a.params), b: len(a.params) + 1})
			a.params = append(a.params, paramShape{dims: []int{in, o}, weight: true}, paramShape{dims: []int{o}})
			total += in*o + o // each term < 2^40: no overflow
			if total > maxParams {
				return nil, fmt.Errorf("%w: more than %d parameters", ErrSpec, maxParams)
			}
		}
		a.towers = append(a.towers, t)
	}
	return a, nil
}

// spec returns the Spec that a describes.
func (a *arch) spec() Spec {
	switch a.kind {
	case kindLogistic:
		return LogisticRegression{Features: a.towers[0].sizes[0]}
	case kindMLP:
		return MLP{Sizes: slices.Clone(a.towers[0].sizes), Activation: a.act, Output: a.output}
	case kindONNX:
		return ONNXModel{Model: slices.Clone(a.onnx.raw), Target: a.onnx.target, Output: a.output}
	}
	return TwoTower{User: slices.Clone(a.towers[0].sizes), Item: slices.Clone(a.towers[1].sizes), Activation: a.act}
}

// outputs is the width of what the loss reads: the model's main output
// "y", or an imported model's Target.
func (a *arch) outputs() int {
	switch a.kind {
	case kindTwoTower:
		return 1
	case kindONNX:
		return a.onnx.width
	}
	s := a.towers[0].sizes
	return s[len(s)-1]
}

// embedding is the width of a two-tower model's embeddings.
func (a *arch) embedding() int {
	s := a.towers[0].sizes
	return s[len(s)-1]
}

func (a *arch) defaultName() string {
	switch a.kind {
	case kindLogistic:
		return "logistic_regression"
	case kindMLP:
		return "mlp"
	case kindONNX:
		if n := a.onnx.info.GraphName; n != "" {
			return n
		}
		return "onnx_model"
	}
	return "two_tower"
}

// init draws the initial parameters from a PCG seeded with seed: weights
// from a normal distribution scaled by fan-in (He for ReLU, Glorot-style
// 1/fan-in for tanh and for the last layer of each tower), biases zero.
//
// An imported model starts from its own initializers.
func (a *arch) init(seed uint64) [][]float32 {
	if a.kind == kindONNX {
		return clone2(a.onnx.masters())
	}
	rng := rand.New(rand.NewPCG(seed, 0x71756976657274)) // "quivert"
	ps := make([][]float32, len(a.params))
	for _, t := range a.towers {
		for li, l := range t.layers {
			scale := 1.0
			if a.act == ReLU && li+1 < len(t.layers) {
				scale = 2
			}
			std := math.Sqrt(scale / float64(l.in))
			w := make([]float32, l.in*l.out)
			for k := range w {
				w[k] = float32(rng.NormFloat64() * std)
			}
			ps[l.w], ps[l.b] = w, make([]float32, l.out)
		}
	}
	return ps
}
