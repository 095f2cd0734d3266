package train_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/gorgonia/train"
)

// dataset is a synthetic supervised problem: rows of features x (one
// matrix per input) and targets y.
type dataset struct {
	inputs map[string][]float32 // rows x width, by input name
	widths map[string]int
	y32    []float32 // binary, regression and two-tower targets
	y64    []int64   // multiclass targets
	k      int       // target width (regression)
	rows   int
}

// batch returns rows [from, to) as Update's arguments.
func (d *dataset) batch(from, to int) (map[string]serving.Tensor, serving.Tensor) {
	in := make(map[string]serving.Tensor, len(d.inputs))
	n := int64(to - from)
	for name, x := range d.inputs {
		w := d.widths[name]
		in[name] = serving.NewTensor([]int64{n, int64(w)}, x[from*w:to*w])
	}
	if d.y64 != nil {
		return in, serving.NewTensor([]int64{n}, d.y64[from:to])
	}
	if d.k > 1 {
		return in, serving.NewTensor([]int64{n, int64(d.k)}, d.y32[from*d.k:to*d.k])
	}
	return in, serving.NewTensor([]int64{n}, d.y32[from:to])
}

// split returns the first n rows and the rest.
func (d *dataset) split(n int) (*dataset, *dataset) {
	a := &dataset{inputs: map[string][]float32{}, widths: d.widths, k: d.k, rows: n}
	b := &dataset{inputs: map[string][]float32{}, widths: d.widths, k: d.k, rows: d.rows - n}
	for name, x := range d.inputs {
		w := d.widths[name]
		a.inputs[name], b.inputs[name] = x[:n*w], x[n*w:]
	}
	k := max(d.k, 1)
	if d.y64 != nil {
		a.y64, b.y64 = d.y64[:n], d.y64[n:]
	} else {
		a.y32, b.y32 = d.y32[:n*k], d.y32[n*k:]
	}
	return a, b
}

// all returns every row as Predict's inputs.
func (d *dataset) all() map[string]serving.Tensor {
	in, _ := d.batch(0, d.rows)
	return in
}

// fit runs epochs over d in mini-batches of size batch, in order.
func fit(t *testing.T, tr *train.Trainer, d *dataset, epochs, batch int) train.UpdateStats {
	t.Helper()
	ctx := context.Background()
	var last train.UpdateStats
	for e := 0; e < epochs; e++ {
		for from := 0; from < d.rows; from += batch {
			in, y := d.batch(from, min(from+batch, d.rows))
			us, err := tr.Update(ctx, in, y)
			require.NoError(t, err)
			last = us
		}
	}
	return last
}

func predictY(t *testing.T, m serving.Model, in map[string]serving.Tensor) []float32 {
	t.Helper()
	out, err := m.Predict(context.Background(), in)
	require.NoError(t, err)
	y, err := out["y"].Tensor.Float32s()
	require.NoError(t, err)
	return y
}

// separable draws rows points in dims dimensions labelled by the side of a
// random hyperplane, leaving out points within margin of it.
func separable(rows, dims int, margin float64, seed uint64) *dataset {
	rng := rand.New(rand.NewPCG(seed, 1))
	w := make([]float64, dims)
	for i := range w {
		w[i] = rng.NormFloat64()
	}
	bias := 0.3
	d := &dataset{inputs: map[string][]float32{}, widths: map[string]int{"x": dims}, rows: rows}
	for len(d.y32) < rows {
		x := make([]float32, dims)
		s := bias
		for i := range x {
			x[i] = float32(rng.NormFloat64())
			s += w[i] * float64(x[i])
		}
		if math.Abs(s) < margin {
			continue
		}
		d.inputs["x"] = append(d.inputs["x"], x...)
		d.y32 = append(d.y32, float32(b2f(s > 0)))
	}
	return d
}

// circles draws points of two concentric rings (label 1 inside, 0 outside),
// a problem no linear model solves.
func circles(rows int, seed uint64) *dataset {
	rng := rand.New(rand.NewPCG(seed, 2))
	d := &dataset{inputs: map[string][]float32{}, widths: map[string]int{"x": 2}, rows: rows}
	for i := 0; i < rows; i++ {
		inner := i%2 == 0
		r := 0.5 + 0.2*rng.Float64()
		if !inner {
			r = 1.1 + 0.3*rng.Float64()
		}
		a := 2 * math.Pi * rng.Float64()
		d.inputs["x"] = append(d.inputs["x"], float32(r*math.Cos(a)), float32(r*math.Sin(a)))
		d.y32 = append(d.y32, float32(b2f(inner)))
	}
	return d
}

// blobs draws k Gaussian clusters in 2 dimensions, labelled by cluster.
func blobs(rows, k int, seed uint64) *dataset {
	rng := rand.New(rand.NewPCG(seed, 3))
	d := &dataset{inputs: map[string][]float32{}, widths: map[string]int{"x": 2}, rows: rows}
	for i := 0; i < rows; i++ {
		c := i % k
		a := 2 * math.Pi * float64(c) / float64(k)
		d.inputs["x"] = append(d.inputs["x"], float32(3*math.Cos(a)+0.5*rng.NormFloat64()), float32(3*math.Sin(a)+0.5*rng.NormFloat64()))
		d.y64 = append(d.y64, int64(c))
	}
	return d
}

// waves is a regression problem with two targets: sin(x0)+0.5·x1 and
// x0·x1, on x in [-2, 2]².
func waves(rows int, seed uint64) *dataset {
	rng := rand.New(rand.NewPCG(seed, 4))
	d := &dataset{inputs: map[string][]float32{}, widths: map[string]int{"x": 2}, rows: rows, k: 2}
	for i := 0; i < rows; i++ {
		x0, x1 := 4*rng.Float64()-2, 4*rng.Float64()-2
		d.inputs["x"] = append(d.inputs["x"], float32(x0), float32(x1))
		d.y32 = append(d.y32, float32(math.Sin(x0)+0.5*x1), float32(x0*x1))
	}
	return d
}

// affinity builds a user-item problem: users and items have hidden 4-d
// tastes; their features are a fixed random linear mix of the tastes plus
// noise (8 user features, 6 item features); a pair is positive when the
// tastes agree (dot product > 0).
func affinity(rows int, seed uint64) *dataset {
	rng := rand.New(rand.NewPCG(seed, 5))
	const latent, nu, ni = 4, 8, 6
	mix := func(n int) [][]float64 {
		m := make([][]float64, n)
		for i := range m {
			m[i] = make([]float64, latent)
			for j := range m[i] {
				m[i][j] = rng.NormFloat64()
			}
		}
		return m
	}
	mu, mi := mix(nu), mix(ni)
	features := func(m [][]float64, z []float64) []float32 {
		f := make([]float32, len(m))
		for i, row := range m {
			var s float64
			for j, v := range row {
				s += v * z[j]
			}
			f[i] = float32(s + 0.05*rng.NormFloat64())
		}
		return f
	}
	d := &dataset{inputs: map[string][]float32{}, widths: map[string]int{"user": nu, "item": ni}, rows: rows}
	for i := 0; i < rows; i++ {
		zu, zi := make([]float64, latent), make([]float64, latent)
		var s float64
		for j := range zu {
			zu[j], zi[j] = rng.NormFloat64(), rng.NormFloat64()
			s += zu[j] * zi[j]
		}
		d.inputs["user"] = append(d.inputs["user"], features(mu, zu)...)
		d.inputs["item"] = append(d.inputs["item"], features(mi, zi)...)
		d.y32 = append(d.y32, float32(b2f(s > 0)))
	}
	return d
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// accuracy of probabilities p against 0/1 labels y.
func accuracy(p, y []float32) float64 {
	ok := 0
	for i := range y {
		if (p[i] > 0.5) == (y[i] > 0.5) {
			ok++
		}
	}
	return float64(ok) / float64(len(y))
}

// meanBCE is the mean binary cross-entropy of probabilities p against y.
func meanBCE(p, y []float32) float64 {
	var s float64
	for i := range y {
		q := math.Min(math.Max(float64(p[i]), 1e-7), 1-1e-7)
		s += -float64(y[i])*math.Log(q) - (1-float64(y[i]))*math.Log(1-q)
	}
	return s / float64(len(y))
}

// randomInputs draws rows of normal values for every input of info.
func randomInputs(info serving.Info, rows int, seed uint64) map[string]serving.Tensor {
	rng := rand.New(rand.NewPCG(seed, 99))
	in := map[string]serving.Tensor{}
	for _, io := range info.Inputs {
		w := int(io.Shape[1])
		x := make([]float32, rows*w)
		for i := range x {
			x[i] = float32(2 * rng.NormFloat64())
		}
		in[io.Name] = serving.NewTensor([]int64{int64(rows), int64(w)}, x)
	}
	return in
}

func newTrainer(t testing.TB, spec train.Spec, opts train.Options) *train.Trainer {
	t.Helper()
	tr, err := train.New(spec, opts)
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close() })
	return tr
}
