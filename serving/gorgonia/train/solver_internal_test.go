package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// gradOf is a parameter and its gradient, as gorgonia's solvers read them.
type gradOf struct{ w, g *tensor.Dense }

func (p gradOf) Value() G.Value           { return p.w }
func (p gradOf) Grad() (G.Value, error)   { return p.g, nil }
func (p gradOf) Name() string             { return "p" }
func (p gradOf) values() (w, g []float32) { return p.w.Data().([]float32), p.g.Data().([]float32) }

// The trainer's solvers (kept here so that their state can be saved and a
// diverging step refused) take the steps gorgonia's solvers take: SGD as
// gorgonia's VanillaSolver, Momentum as its Momentum, Adam as its
// AdamSolver, with the same learning rate, decay rates and epsilon, and
// with L2 and element clipping as gorgonia's WithL2Reg and WithClip apply
// them (except L2 with Momentum: gorgonia's Momentum adds L2 times its
// velocity to the gradient, where L2 regularisation, and this package, add
// L2 times the weights). Thirty steps of changing gradients (large enough for clipping to
// bite) on two weight matrices from the same start must end on the same
// parameters, within float32 rounding: gorgonia computes in float32, this
// package in float64.
func TestSolversMatchGorgonia(t *testing.T) {
	a := &arch{params: []paramShape{{dims: []int{3, 4}, weight: true}, {dims: []int{5}, weight: true}}}
	for _, s := range []Solver{SGD, Momentum, Adam} {
		for _, reg := range []struct{ l2, clip float64 }{{0, 0}, {0, 0.4}, {0.05, 0.4}} {
			if s == Momentum && reg.l2 > 0 {
				continue
			}
			t.Run(fmt.Sprintf("%v/l2=%v/clip=%v", s, reg.l2, reg.clip), func(t *testing.T) {
				o, err := Options{Solver: s, LearningRate: 0.05, Momentum: 0.8, L2: reg.l2, ClipValue: reg.clip}.withDefaults()
				require.NoError(t, err)
				gopts := []G.SolverOpt{G.WithLearnRate(o.LearningRate)}
				if reg.l2 > 0 {
					gopts = append(gopts, G.WithL2Reg(reg.l2))
				}
				if reg.clip > 0 {
					gopts = append(gopts, G.WithClip(reg.clip))
				}
				var solver G.Solver
				switch s {
				case SGD:
					solver = G.NewVanillaSolver(gopts...)
				case Momentum:
					solver = G.NewMomentum(append(gopts, G.WithMomentum(o.Momentum))...)
				case Adam:
					solver = G.NewAdamSolver(append(gopts, G.WithBeta1(o.Beta1), G.WithBeta2(o.Beta2), G.WithEps(o.Epsilon))...)
				}

				rng := rand.New(rand.NewPCG(3, uint64(s)))
				params, grads, next := zeros(a), zeros(a), zeros(a)
				slots, spare := make([][][]float32, slotCount(s)), make([][][]float32, slotCount(s))
				for k := range slots {
					slots[k], spare[k] = zeros(a), zeros(a)
				}
				theirs := make([]G.ValueGrad, len(a.params))
				for i, p := range a.params {
					for k := range params[i] {
						params[i][k] = float32(rng.NormFloat64())
					}
					w := tensor.New(tensor.WithShape(p.dims...), tensor.WithBacking(append([]float32(nil), params[i]...)))
					g := tensor.New(tensor.WithShape(p.dims...), tensor.WithBacking(make([]float32, p.size())))
					theirs[i] = gradOf{w, g}
				}
				clipped := false
				for n := int64(1); n <= 30; n++ {
					for i := range grads {
						_, g := theirs[i].(gradOf).values()
						for k := range grads[i] {
							grads[i][k] = float32(0.5 * rng.NormFloat64())
							g[k] = grads[i][k]
						}
					}
					_, c := regularize(&o, a, params, grads)
					clipped = clipped || c
					require.True(t, step(&o, n, params, grads, next, slots, spare), "step %d finite", n)
					for i := range next {
						copy(params[i], next[i])
					}
					slots, spare = spare, slots
					require.NoError(t, solver.Step(theirs))
				}
				require.Equal(t, reg.clip > 0, clipped, "clipping bit when on")
				moved := 0.0
				for i := range params {
					w, _ := theirs[i].(gradOf).values()
					for k := range w {
						require.InDelta(t, w[k], params[i][k], 2e-5*(1+math.Abs(float64(w[k]))), "parameter %d[%d]", i, k)
						moved = max(moved, math.Abs(float64(w[k])))
					}
				}
				require.Greater(t, moved, 0.0)
			})
		}
	}
}
