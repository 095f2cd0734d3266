package train

import "math"

// The solvers are written here rather than taken from gorgonia: gorgonia's
// keep their state (Adam's moments and step count, the momentum buffer) in
// unexported fields, so a trainer built on them could not save and resume
// its state; they clip by value only, not by norm; and they update the
// parameters in place, so a step that turns out to diverge cannot be
// refused after the fact. These compute the new parameters and the new
// solver state into fresh buffers, which the trainer commits only when every
// value is finite. They take the steps gorgonia's VanillaSolver, Momentum
// and AdamSolver take, L2 and clipping included (TestSolversMatchGorgonia),
// except L2 with Momentum: gorgonia's Momentum adds L2 times its velocity
// to the gradient, these add L2 times the weights.

// slotCount is the number of per-parameter state buffers a solver keeps.
func slotCount(s Solver) int {
	switch s {
	case Momentum:
		return 1
	case Adam:
		return 2
	}
	return 0
}

// step applies one update to every parameter: next[i] = params[i] moved
// along grads[i] (already regularised and clipped), and nextSlots the
// solver's state after the step. t is the step's number, 1 for the first.
// It reports whether every new value is finite.
func step(o *Options, t int64, params, grads, next [][]float32, slots, nextSlots [][][]float32) bool {
	finite := true
	lr := o.LearningRate
	switch o.Solver {
	case SGD:
		for i, p := range params {
			g, n := grads[i], next[i]
			for k := range p {
				v := float32(float64(p[k]) - lr*float64(g[k]))
				n[k] = v
				finite = finite && isFinite32(v)
			}
		}
	case Momentum:
		mu := o.Momentum
		for i, p := range params {
			g, n, vel, nv := grads[i], next[i], slots[0][i], nextSlots[0][i]
			for k := range p {
				v := mu*float64(vel[k]) + float64(g[k])
				nv[k] = float32(v)
				w := float32(float64(p[k]) - lr*v)
				n[k] = w
				finite = finite && isFinite32(w) && isFinite32(nv[k])
			}
		}
	case Adam:
		b1, b2, eps := o.Beta1, o.Beta2, o.Epsilon
		c1 := 1 - math.Pow(b1, float64(t))
		c2 := 1 - math.Pow(b2, float64(t))
		for i, p := range params {
			g, n := grads[i], next[i]
			m, v, nm, nv := slots[0][i], slots[1][i], nextSlots[0][i], nextSlots[1][i]
			for k := range p {
				gk := float64(g[k])
				mk := b1*float64(m[k]) + (1-b1)*gk
				vk := b2*float64(v[k]) + (1-b2)*gk*gk
				nm[k], nv[k] = float32(mk), float32(vk)
				w := float32(float64(p[k]) - lr*(mk/c1)/(math.Sqrt(vk/c2)+eps))
				n[k] = w
				finite = finite && isFinite32(w) && isFinite32(nm[k]) && isFinite32(nv[k])
			}
		}
	}
	return finite
}

// regularize adds L2·W to the gradient of every weight matrix, clips every
// element to ±ClipValue, then rescales the whole gradient to ClipNorm. It
// returns the gradient's norm before clipping (L2 term included) and
// whether clipping changed it.
func regularize(o *Options, a *arch, params, grads [][]float32) (norm float64, clipped bool) {
	var sq float64
	for i, g := range grads {
		if o.L2 > 0 && a.params[i].weight {
			w := params[i]
			for k := range g {
				g[k] += float32(o.L2 * float64(w[k]))
			}
		}
		for _, v := range g {
			sq += float64(v) * float64(v)
		}
	}
	norm = math.Sqrt(sq)
	if c := float32(o.ClipValue); c > 0 {
		sq = 0
		for _, g := range grads {
			for k, v := range g {
				if v > c {
					g[k], clipped = c, true
				} else if v < -c {
					g[k], clipped = -c, true
				}
				sq += float64(g[k]) * float64(g[k])
			}
		}
	}
	if c := o.ClipNorm; c > 0 {
		if n := math.Sqrt(sq); n > c {
			scale := c / n
			for _, g := range grads {
				for k := range g {
					g[k] = float32(float64(g[k]) * scale)
				}
			}
			clipped = true
		}
	}
	return norm, clipped
}

func isFinite32(v float32) bool { return v-v == 0 }
