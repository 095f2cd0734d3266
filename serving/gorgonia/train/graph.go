package train

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// graph is the training graph of an arch for a fixed number of rows (its
// capacity): forward pass, loss, and the gradient of the loss with respect
// to every parameter, built with gorgonia's symbolic differentiation and run
// on a TapeMachine.
//
// A batch with fewer rows than the capacity is padded: the padding rows are
// zero and their weight in mask is zero, so they add nothing to the loss or
// the gradients. mask holds 1/rows for every real row, which makes the loss
// the mean over the real rows. Trainers keep one graph per power-of-two
// capacity, so a stream of batches of varying size compiles a few graphs,
// not one per size.
//
// The parameter nodes are bound to the caller's slices (the trainer's
// master parameters): a run reads them as they are at that moment, so a
// graph never needs rebuilding when the parameters change. The input,
// target and mask nodes are bound to slices the graph owns, which the caller
// fills before each run.
type graph struct {
	rows   int
	g      *G.ExprGraph
	vm     G.VM
	inputs []*tensor.Dense // per tower, rows x features
	target *tensor.Dense   // binary: rows; multiclass: rows x classes (one-hot); regression: rows x outputs
	mask   *tensor.Dense   // rows
	loss   *G.Node
	grads  G.Nodes // one per parameter, in arch order
	out    G.Value // the model's output "y" after a run (graphs built withOutput only)
}

// buildGraph builds the graph for rows rows. params hold the parameters'
// values, shaped as in arch.params, of dtype dt (tensor.Float32 for
// training; tests build Float64 graphs for gradient checks). An imported
// model's graph is built by serving/gorgonia instead, in float32, over the
// parameter tensors of the model's training Graph; params is not used.
func buildGraph(a *arch, params []*tensor.Dense, rows int, dt tensor.Dtype, withOutput bool) (gr *graph, err error) {
	defer func() {
		// gorgonia reports some shape errors by panicking; a graph that
		// cannot be built is a bug here, reported as an error.
		if r := recover(); r != nil {
			err = fmt.Errorf("train: building the graph: %v", r)
		}
	}()
	g := G.NewGraph()
	gr = &graph{rows: rows, g: g}
	var z *G.Node // what the loss reads, rows or rows x width
	var pn G.Nodes
	logits := true // z holds logits (else probabilities) for Binary and Multiclass
	if a.kind == kindONNX {
		dt = tensor.Float32
		if z, pn, err = a.onnx.buildHead(g, gr, rows); err != nil {
			return nil, err
		}
		logits = a.onnx.fromLogits
	} else if z, pn, err = buildTowers(a, g, gr, params, rows, dt); err != nil {
		return nil, err
	}

	gr.mask = tensor.New(tensor.Of(dt), tensor.WithShape(rows))
	mask := G.NewVector(g, dt, G.WithShape(rows), G.WithName("mask"), G.WithValue(gr.mask))
	k := a.outputs()
	var perRow *G.Node // rows
	switch a.output {
	case Binary:
		z := G.Must(G.Reshape(z, []int{rows}))
		gr.target = tensor.New(tensor.Of(dt), tensor.WithShape(rows))
		t := G.NewVector(g, dt, G.WithShape(rows), G.WithName("target"), G.WithValue(gr.target))
		if logits {
			perRow, err = bceWithLogits(z, t)
		} else {
			perRow, err = bceWithProbabilities(z, t)
		}
		if err != nil {
			return nil, err
		}
		if withOutput {
			if logits {
				z = G.Must(G.Sigmoid(z))
			}
			G.Read(z, &gr.out)
		}
	case Multiclass:
		gr.target = tensor.New(tensor.Of(dt), tensor.WithShape(rows, k))
		t := G.NewMatrix(g, dt, G.WithShape(rows, k), G.WithName("target"), G.WithValue(gr.target))
		var logp *G.Node
		if logits {
			logp, err = logSoftmax(z)
		} else {
			logp, err = logClamped(z)
		}
		if err != nil {
			return nil, err
		}
		// Cross-entropy: -Σ onehot·log p.
		perRow = G.Must(G.Neg(G.Must(G.Sum(G.Must(G.HadamardProd(logp, t)), 1))))
		if withOutput {
			// exp(logsoftmax), not SoftMax: gorgonia's softmax op hashes
			// the same with and without its log flag, so a graph holding
			// both would merge them into one node.
			G.Read(G.Must(G.Exp(logp)), &gr.out)
		}
	default: // Regression: mean over outputs of the squared error
		z := G.Must(G.Reshape(z, []int{rows, k}))
		gr.target = tensor.New(tensor.Of(dt), tensor.WithShape(rows, k))
		t := G.NewMatrix(g, dt, G.WithShape(rows, k), G.WithName("target"), G.WithValue(gr.target))
		perRow = G.Must(G.Mean(G.Must(G.Square(G.Must(G.Sub(z, t)))), 1))
		if withOutput {
			G.Read(z, &gr.out)
		}
	}
	if gr.loss, err = G.Sum(G.Must(G.HadamardProd(perRow, mask))); err != nil {
		return nil, err
	}
	if gr.grads, err = G.Grad(gr.loss, pn...); err != nil {
		return nil, err
	}
	gr.vm = G.NewTapeMachine(g)
	return gr, nil
}

// buildTowers builds a built-in model's forward pass up to its logits (or
// regression values): each tower's dense layers, and for a two-tower model
// the dot product of the two embeddings.
func buildTowers(a *arch, g *G.ExprGraph, gr *graph, params []*tensor.Dense, rows int, dt tensor.Dtype) (*G.Node, G.Nodes, error) {
	var err error
	pn := make(G.Nodes, len(params))
	for i, p := range params {
		name := fmt.Sprintf("p%d", i)
		pn[i] = G.NewTensor(g, dt, len(a.params[i].dims), G.WithShape(p.Shape()...), G.WithName(name), G.WithValue(p))
	}
	var heads G.Nodes // each tower's last layer, rows x width
	for ti, t := range a.towers {
		x := tensor.New(tensor.Of(dt), tensor.WithShape(rows, t.sizes[0]))
		gr.inputs = append(gr.inputs, x)
		h := G.NewMatrix(g, dt, G.WithShape(rows, t.sizes[0]), G.WithName(fmt.Sprintf("in%d", ti)), G.WithValue(x))
		for li, l := range t.layers {
			if h, err = G.Mul(h, pn[l.w]); err != nil {
				return nil, nil, err
			}
			if h, err = G.BroadcastAdd(h, pn[l.b], nil, []byte{0}); err != nil {
				return nil, nil, err
			}
			if li+1 < len(t.layers) {
				if a.act == Tanh {
					h, err = G.Tanh(h)
				} else {
					h, err = G.Rectify(h)
				}
				if err != nil {
					return nil, nil, err
				}
			}
		}
		heads = append(heads, h)
	}
	if a.kind != kindTwoTower {
		return heads[0], pn, nil
	}
	dot, err := G.HadamardProd(heads[0], heads[1])
	if err != nil {
		return nil, nil, err
	}
	dot, err = G.Sum(dot, 1)
	return dot, pn, err
}

// probFloor keeps the logarithm of a probability finite when the loss can
// only read probabilities (an imported model whose output is not the
// direct result of a Sigmoid or Softmax): log(p + probFloor).
const probFloor = 1e-7

// bceWithProbabilities is -t·log(p+ε) - (1-t)·log(1-p+ε), per element.
func bceWithProbabilities(p, t *G.Node) (*G.Node, error) {
	dt := p.Dtype()
	eps := G.NewConstant(castScalar(probFloor, dt))
	one := G.NewConstant(castScalar(1, dt))
	lp, err := G.Log(G.Must(G.Add(p, eps)))
	if err != nil {
		return nil, err
	}
	lq, err := G.Log(G.Must(G.Add(G.Must(G.Sub(one, p)), eps)))
	if err != nil {
		return nil, err
	}
	a := G.Must(G.HadamardProd(t, lp))
	b := G.Must(G.HadamardProd(G.Must(G.Sub(one, t)), lq))
	return G.Neg(G.Must(G.Add(a, b)))
}

// logClamped is log(p + ε), elementwise.
func logClamped(p *G.Node) (*G.Node, error) {
	return G.Log(G.Must(G.Add(p, G.NewConstant(castScalar(probFloor, p.Dtype())))))
}

func castScalar(v float64, dt tensor.Dtype) any {
	if dt == tensor.Float64 {
		return v
	}
	return float32(v)
}

// bceWithLogits returns the binary cross-entropy of sigmoid(z) against t,
// per element, in the form that never overflows:
// max(z, 0) - z·t + log(1 + exp(-|z|)).
func bceWithLogits(z, t *G.Node) (*G.Node, error) {
	relu, err := G.Rectify(z)
	if err != nil {
		return nil, err
	}
	zt, err := G.HadamardProd(z, t)
	if err != nil {
		return nil, err
	}
	abs, err := G.Abs(z)
	if err != nil {
		return nil, err
	}
	neg, err := G.Neg(abs)
	if err != nil {
		return nil, err
	}
	exp, err := G.Exp(neg)
	if err != nil {
		return nil, err
	}
	softplus, err := G.Log1p(exp)
	if err != nil {
		return nil, err
	}
	d, err := G.Sub(relu, zt)
	if err != nil {
		return nil, err
	}
	return G.Add(d, softplus)
}

// logSoftmax returns z - m - log Σ exp(z - m) along axis 1 of the matrix
// z, where m is each row's maximum, so that no exponential overflows.
//
// It is built from gorgonia's primitives rather than with its LogSoftMax,
// whose kernels in gorgonia.org/tensor v0.9.24 subtract the first element of
// the whole tensor instead of each row's maximum: a row whose logits are
// far above the first row's overflows to NaN. The gradient through m is
// zero in exact arithmetic (shifting every logit of a row by the same
// amount changes nothing), whatever Max's gradient is.
func logSoftmax(z *G.Node) (*G.Node, error) {
	m, err := G.Max(z, 1)
	if err != nil {
		return nil, err
	}
	shifted, err := G.BroadcastSub(z, m, nil, []byte{1})
	if err != nil {
		return nil, err
	}
	exp, err := G.Exp(shifted)
	if err != nil {
		return nil, err
	}
	sum, err := G.Sum(exp, 1)
	if err != nil {
		return nil, err
	}
	lse, err := G.Log(sum)
	if err != nil {
		return nil, err
	}
	return G.BroadcastSub(shifted, lse, nil, []byte{1})
}

// run runs the graph once on the values its inputs, target and mask hold.
// The caller reads loss and grads, then calls reset.
func (gr *graph) run() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("train: running the graph: %v", r)
		}
	}()
	return gr.vm.RunAll()
}

func (gr *graph) reset() { gr.vm.Reset() }

func (gr *graph) close() error { return gr.vm.Close() }
