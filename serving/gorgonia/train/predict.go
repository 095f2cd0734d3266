package train

import (
	"math"
	"sync"

	"gorgonia.org/tensor"

	"github.com/quiverml/quiver/internal/simd"
)

// snapshot is the model as one step left it. It is never modified after
// Update publishes it, so Predict and Export read it without locks while
// the next step runs; a reader holding an older snapshot keeps a
// consistent, if stale, model.
type snapshot struct {
	step   int64
	rows   int64   // rows trained on, up to this step
	loss   float64 // the loss of the step that made this snapshot; NaN before the first
	params [][]float32
	// wt holds each weight matrix transposed (out x in), so that every
	// output unit is a dot product of two contiguous rows; nil for biases.
	wt [][]float32
	// tens wraps params as tensors, for an imported model's graph.
	tens []*tensor.Dense
}

func newSnapshot(a *arch, params [][]float32, step, rows int64, loss float64) *snapshot {
	s := &snapshot{step: step, rows: rows, loss: loss, params: params}
	if a.kind == kindONNX {
		s.tens = make([]*tensor.Dense, len(params))
		for i, p := range a.params {
			s.tens[i] = tensor.New(tensor.WithShape(p.dims...), tensor.WithBacking(params[i]))
		}
		return s
	}
	s.wt = make([][]float32, len(params))
	for i, p := range a.params {
		if !p.weight {
			continue
		}
		rows, cols := p.dims[0], p.dims[1]
		w, wt := params[i], make([]float32, rows*cols)
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				wt[c*rows+r] = w[r*cols+c]
			}
		}
		s.wt[i] = wt
	}
	return s
}

// scratch buffers for hidden activations, reused across Predict calls.
var scratchPool = sync.Pool{New: func() any { return new([2][]float32) }}

// tower runs one tower over rows rows of x into out (rows x the tower's
// last size).
func (s *snapshot) tower(a *arch, t *tower, x []float32, rows int, out []float32) {
	bufs := scratchPool.Get().(*[2][]float32)
	defer scratchPool.Put(bufs)
	h := x
	for li, l := range t.layers {
		last := li+1 == len(t.layers)
		var dst []float32
		if last {
			dst = out
		} else {
			b := &bufs[li%2]
			if cap(*b) < rows*l.out {
				*b = make([]float32, rows*l.out)
			}
			dst = (*b)[:rows*l.out]
		}
		wt, bias := s.wt[l.w], s.params[l.b]
		for r := 0; r < rows; r++ {
			xr, yr := h[r*l.in:(r+1)*l.in], dst[r*l.out:(r+1)*l.out]
			for j := range yr {
				yr[j] = bias[j] + simd.Dot(xr, wt[j*l.in:(j+1)*l.in])
			}
		}
		if !last {
			if a.act == Tanh {
				for k, v := range dst {
					dst[k] = float32(math.Tanh(float64(v)))
				}
			} else {
				for k, v := range dst {
					if v < 0 {
						dst[k] = 0
					}
				}
			}
		}
		h = dst
	}
}

// sigmoid is 1/(1+e^-z) in the form that never overflows.
func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// softmaxRows replaces each row of k logits in z with its softmax.
func softmaxRows(z []float32, k int) {
	for r := 0; r+k <= len(z); r += k {
		row := z[r : r+k]
		m := row[0]
		for _, v := range row[1:] {
			m = max(m, v)
		}
		var sum float64
		for _, v := range row {
			sum += math.Exp(float64(v - m))
		}
		for j, v := range row {
			row[j] = float32(math.Exp(float64(v-m)) / sum)
		}
	}
}
