package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"
)

// refModel is an independent float64 implementation of an arch's forward
// pass and loss, written with plain loops, against which the gorgonia graph
// is checked.
type refModel struct {
	a      *arch
	params [][]float64
}

func (m *refModel) tower(t *tower, x []float64, rows int) []float64 {
	h := x
	for li, l := range t.layers {
		w, b := m.params[l.w], m.params[l.b]
		out := make([]float64, rows*l.out)
		for r := 0; r < rows; r++ {
			for j := 0; j < l.out; j++ {
				s := b[j]
				for i := 0; i < l.in; i++ {
					s += h[r*l.in+i] * w[i*l.out+j]
				}
				if li+1 < len(t.layers) {
					if m.a.act == Tanh {
						s = math.Tanh(s)
					} else {
						s = math.Max(s, 0)
					}
				}
				out[r*l.out+j] = s
			}
		}
		h = out
	}
	return h
}

// loss is the mean loss over rows: targets are probabilities (binary,
// two-tower), class indices (multiclass) or values (regression).
func (m *refModel) loss(xs [][]float64, rows int, targets []float64) float64 {
	a := m.a
	var total float64
	if a.kind == kindTwoTower {
		u := m.tower(&a.towers[0], xs[0], rows)
		v := m.tower(&a.towers[1], xs[1], rows)
		d := a.embedding()
		for r := 0; r < rows; r++ {
			var z float64
			for j := 0; j < d; j++ {
				z += u[r*d+j] * v[r*d+j]
			}
			total += refBCE(z, targets[r])
		}
		return total / float64(rows)
	}
	z := m.tower(&a.towers[0], xs[0], rows)
	k := a.outputs()
	for r := 0; r < rows; r++ {
		row := z[r*k : (r+1)*k]
		switch a.output {
		case Binary:
			total += refBCE(row[0], targets[r])
		case Multiclass:
			mx := row[0]
			for _, v := range row {
				mx = math.Max(mx, v)
			}
			var s float64
			for _, v := range row {
				s += math.Exp(v - mx)
			}
			total += -(row[int(targets[r])] - mx - math.Log(s))
		case Regression:
			var se float64
			for j, v := range row {
				d := v - targets[r*k+j]
				se += d * d
			}
			total += se / float64(k)
		}
	}
	return total / float64(rows)
}

// refBCE is -t·log σ(z) - (1-t)·log(1-σ(z)), written the direct way
// (accurate enough for the moderate z of these tests).
func refBCE(z, t float64) float64 {
	p := 1 / (1 + math.Exp(-z))
	return -t*math.Log(p) - (1-t)*math.Log(1-p)
}

type gradCase struct {
	name string
	spec Spec
	rows int
	cap  int
}

func gradCases() []gradCase {
	return []gradCase{
		{"logistic", LogisticRegression{Features: 5}, 7, 8},
		{"logistic-one-row", LogisticRegression{Features: 3}, 1, 1},
		{"mlp-binary-relu", MLP{Sizes: []int{4, 6, 1}}, 5, 8},
		{"mlp-binary-tanh", MLP{Sizes: []int{4, 6, 5, 1}, Activation: Tanh}, 4, 4},
		{"mlp-multiclass", MLP{Sizes: []int{4, 5, 3}, Activation: Tanh, Output: Multiclass}, 6, 8},
		{"mlp-multiclass-relu", MLP{Sizes: []int{3, 7, 4}, Output: Multiclass}, 2, 2},
		{"mlp-regression", MLP{Sizes: []int{3, 4, 2}, Output: Regression}, 5, 8},
		{"mlp-regression-1", MLP{Sizes: []int{3, 1}, Output: Regression}, 3, 4},
		{"two-tower", TwoTower{User: []int{3, 4, 3}, Item: []int{2, 3}, Activation: Tanh}, 5, 8},
	}
}

// randomBatch draws inputs and targets for a, padded to capacity rows.
func randomBatch(a *arch, rows int, rng *rand.Rand) (xs [][]float64, targets []float64) {
	for _, t := range a.towers {
		x := make([]float64, rows*t.sizes[0])
		for i := range x {
			x[i] = rng.NormFloat64()
		}
		xs = append(xs, x)
	}
	k := a.outputs()
	switch {
	case a.output == Multiclass:
		targets = make([]float64, rows)
		for i := range targets {
			targets[i] = float64(rng.IntN(k))
		}
	case a.output == Regression:
		targets = make([]float64, rows*k)
		for i := range targets {
			targets[i] = rng.NormFloat64()
		}
	default:
		targets = make([]float64, rows)
		for i := range targets {
			targets[i] = rng.Float64()
		}
	}
	return xs, targets
}

// fillGraph64 writes a batch into a float64 graph, as Trainer.fill does
// for float32 graphs.
func fillGraph64(a *arch, gr *graph, xs [][]float64, rows int, targets []float64) {
	for i, x := range xs {
		d := gr.inputs[i].Data().([]float64)
		clear(d)
		copy(d, x)
	}
	tg := gr.target.Data().([]float64)
	clear(tg)
	if a.output == Multiclass {
		k := a.outputs()
		for r, c := range targets {
			tg[r*k+int(c)] = 1
		}
	} else {
		copy(tg, targets)
	}
	mask := gr.mask.Data().([]float64)
	clear(mask)
	for r := 0; r < rows; r++ {
		mask[r] = 1 / float64(rows)
	}
}

// TestGradientsMatchFiniteDifferences checks, for each loss and model kind,
// that the loss gorgonia computes equals an independent implementation's,
// and that every element of gorgonia's gradient equals the central finite
// difference of that independent loss. Graphs are built in float64 so that
// the finite differences are precise; training builds the same graph in
// float32. Batches are smaller than the graph's capacity, so the padding
// rows are checked to contribute nothing.
func TestGradientsMatchFiniteDifferences(t *testing.T) {
	for _, tc := range gradCases() {
		t.Run(tc.name, func(t *testing.T) {
			a, err := tc.spec.arch()
			require.NoError(t, err)
			rng := rand.New(rand.NewPCG(11, 12))
			init := a.init(3)
			params := make([][]float64, len(init))
			ptens := make([]*tensor.Dense, len(init))
			for i, p := range init {
				params[i] = make([]float64, len(p))
				for k := range p {
					// Biases start at zero: give them values so their
					// gradients are exercised away from the origin.
					params[i][k] = float64(p[k]) + 0.1*rng.NormFloat64()
				}
				ptens[i] = tensor.New(tensor.WithShape(a.params[i].dims...), tensor.WithBacking(params[i]))
			}
			gr, err := buildGraph(a, ptens, tc.cap, tensor.Float64, false)
			require.NoError(t, err)
			defer gr.close()
			xs, targets := randomBatch(a, tc.rows, rng)
			fillGraph64(a, gr, xs, tc.rows, targets)
			require.NoError(t, gr.run())
			loss, err := scalar(gr.loss)
			require.NoError(t, err)
			grads := make([][]float64, len(gr.grads))
			for i, g := range gr.grads {
				grads[i] = append([]float64(nil), g.Value().Data().([]float64)...)
			}
			gr.reset()

			ref := &refModel{a: a, params: params}
			require.InDelta(t, ref.loss(xs, tc.rows, targets), loss, 1e-12, "loss")
			const h = 1e-6
			for i, p := range params {
				for k := range p {
					orig := p[k]
					p[k] = orig + h
					up := ref.loss(xs, tc.rows, targets)
					p[k] = orig - h
					down := ref.loss(xs, tc.rows, targets)
					p[k] = orig
					fd := (up - down) / (2 * h)
					require.InDelta(t, fd, grads[i][k], 1e-6+1e-5*math.Abs(fd), "parameter %d element %d", i, k)
				}
			}
		})
	}
}

// TestLossesStableAtLargeLogits checks that binary and softmax
// cross-entropy stay finite and exact where a naive formula overflows
// (exp(1000)) or loses the answer to rounding (log(1 - σ(40)) = log 0). The
// model is one layer with zero bias, so the logits are the weights times
// the input (1 on the row under test, 0 on a row before it).
func TestLossesStableAtLargeLogits(t *testing.T) {
	for _, tc := range []struct {
		name     string
		spec     Spec
		logits   []float64
		target   float64
		want     float64
		rowAfter bool // put the row under test second, behind a row of zero logits
	}{
		// z = 1000, t = 0: the loss is softplus(1000) = 1000.
		{"binary-large-positive", MLP{Sizes: []int{1, 1}}, []float64{1000}, 0, 1000, false},
		// z = -1000, t = 1: softplus(1000) again.
		{"binary-large-negative", MLP{Sizes: []int{1, 1}}, []float64{-1000}, 1, 1000, false},
		// z = 40, t = 1: log(1 + e^-40) ≈ e^-40.
		{"binary-confident-right", MLP{Sizes: []int{1, 1}}, []float64{40}, 1, math.Exp(-40), false},
		// logits (1000, 0, -1000), class 1: 1000 + log(1 + e^-1000 + e^-2000) = 1000.
		{"softmax-large", MLP{Sizes: []int{1, 3}, Output: Multiclass}, []float64{1000, 0, -1000}, 1, 1000, false},
		// The same behind a row of zero logits (loss log 3): the case
		// gorgonia's own LogSoftMax gets wrong.
		{"softmax-large-second-row", MLP{Sizes: []int{1, 3}, Output: Multiclass}, []float64{1000, 0, -1000}, 1, (1000 + math.Log(3)) / 2, true},
		{"softmax-large-negative-second-row", MLP{Sizes: []int{1, 3}, Output: Multiclass}, []float64{-1000, -3000, -2000}, 0, math.Log(3) / 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := tc.spec.arch()
			require.NoError(t, err)
			k := a.outputs()
			w := tensor.New(tensor.WithShape(1, k), tensor.WithBacking(tc.logits))
			b := tensor.New(tensor.WithShape(k), tensor.WithBacking(make([]float64, k)))
			gr, err := buildGraph(a, []*tensor.Dense{w, b}, 2, tensor.Float64, false)
			require.NoError(t, err)
			defer gr.close()
			if tc.rowAfter {
				fillGraph64(a, gr, [][]float64{{0, 1}}, 2, []float64{tc.target, tc.target})
			} else {
				fillGraph64(a, gr, [][]float64{{1}}, 1, []float64{tc.target})
			}
			require.NoError(t, gr.run())
			loss, err := scalar(gr.loss)
			require.NoError(t, err)
			require.InDelta(t, tc.want, loss, 1e-9*max(1, tc.want))
			for i, g := range gr.grads {
				for _, v := range g.Value().Data().([]float64) {
					require.False(t, math.IsNaN(v) || math.IsInf(v, 0), "gradient %d: %v", i, v)
				}
			}
			gr.reset()
		})
	}
}

func TestGraphDoesNotWriteParameters(t *testing.T) {
	a, err := MLP{Sizes: []int{3, 4, 2}, Output: Multiclass}.arch()
	require.NoError(t, err)
	ps := a.init(1)
	before := clone2(ps)
	tr := newTrainer(a, mustDefaults(t, Options{}), ps, nil, 0, 0, math.NaN())
	gr, err := tr.graphFor(3)
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		for ti := range gr.inputs {
			d := gr.inputs[ti].Data().([]float32)
			for k := range d {
				d[k] = float32(k%5) - 2
			}
		}
		_, err := tr.gradient(gr)
		require.NoError(t, err)
	}
	require.Equal(t, before, tr.params, fmt.Sprint("running the graph changed the parameters"))
}

func mustDefaults(t *testing.T, o Options) Options {
	t.Helper()
	o, err := o.withDefaults()
	require.NoError(t, err)
	return o
}
