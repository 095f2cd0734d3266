package train

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/bits"
	"strconv"
	"sync/atomic"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/quiverml/quiver/internal/simd"
	"github.com/quiverml/quiver/serving"
)

// Trainer trains a model with mini-batch gradient descent and serves it
// while it learns. It is a serving.Model: Predict answers from the
// parameters of the last completed step, and Update publishes each step's
// parameters atomically, so a prediction never sees half-updated weights.
// Updates run one at a time; Predict, Info, Export and Stats never wait for
// them. A Trainer is safe for concurrent use.
type Trainer struct {
	a    *arch
	opts Options // with defaults
	log  *slog.Logger
	info serving.Info // signature and fixed metadata; Custom is filled per call

	snap   atomic.Pointer[snapshot]
	closed atomic.Bool
	st     counters

	// sem is held by Update, Save and Close; it guards the fields below.
	sem    chan struct{}
	step   int64
	rows   int64
	params [][]float32     // master parameters, bound to every graph
	ptens  []*tensor.Dense // params as gorgonia tensors
	slots  [][][]float32   // solver state: slot, parameter, values
	spare  [][][]float32   // the next step's solver state is written here, then swapped
	grads  [][]float32     // scratch for the gradient
	graphs map[int]*graph  // by capacity (a power of two)
}

// UpdateStats describes one applied step.
type UpdateStats struct {
	// Step is the number of steps applied, this one included.
	Step int64
	// Rows is the number of rows in the batch.
	Rows int
	// Loss is the mean loss over the batch's rows with the parameters
	// before the step, without the L2 term.
	Loss float64
	// GradNorm is the L2 norm of the gradient (L2 term included) before
	// clipping.
	GradNorm float64
	// Clipped reports whether ClipValue or ClipNorm changed the gradient.
	Clipped bool
}

// New returns a trainer for spec with freshly initialised parameters (see
// Options.Seed). It returns an error matching ErrSpec or ErrOptions when
// either is out of range.
func New(spec Spec, opts Options) (*Trainer, error) {
	if spec == nil {
		return nil, fmt.Errorf("%w: no spec, want LogisticRegression, MLP, TwoTower or ONNXModel", ErrSpec)
	}
	a, err := spec.arch()
	if err != nil {
		return nil, err
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if o.Name == "" {
		o.Name = a.defaultName()
	}
	params := a.init(o.Seed)
	slots := make([][][]float32, slotCount(o.Solver))
	for s := range slots {
		slots[s] = zeros(a)
	}
	return newTrainer(a, o, params, slots, 0, 0, math.NaN()), nil
}

// newTrainer assembles a trainer from checked parts (New and Load).
func newTrainer(a *arch, o Options, params [][]float32, slots [][][]float32, step, rows int64, loss float64) *Trainer {
	t := &Trainer{a: a, opts: o, log: o.Logger, sem: make(chan struct{}, 1),
		step: step, rows: rows, params: params, slots: slots, graphs: map[int]*graph{}}
	t.opts.Logger = nil
	if t.log == nil {
		t.log = slog.Default()
	}
	t.spare = make([][][]float32, len(slots))
	for s := range slots {
		t.spare[s] = zeros(a)
	}
	t.grads = zeros(a)
	if a.kind == kindONNX {
		// The graphs serving/gorgonia builds read the parameters from the
		// model's training Graph: those tensors are the master copy.
		masters := a.onnx.masters()
		for i, m := range masters {
			copy(m, params[i])
		}
		t.params = masters
	}
	t.ptens = make([]*tensor.Dense, len(params))
	for i, p := range a.params {
		t.ptens[i] = tensor.New(tensor.WithShape(p.dims...), tensor.WithBacking(t.params[i]))
	}
	t.info = a.info(o)
	t.snap.Store(newSnapshot(a, clone2(params), step, rows, loss))
	return t
}

func zeros(a *arch) [][]float32 {
	z := make([][]float32, len(a.params))
	for i, p := range a.params {
		z[i] = make([]float32, p.size())
	}
	return z
}

func clone2(ps [][]float32) [][]float32 {
	c := make([][]float32, len(ps))
	for i, p := range ps {
		c[i] = append([]float32(nil), p...)
	}
	return c
}

// info returns the model's signature and fixed metadata.
func (a *arch) info(o Options) serving.Info {
	if a.kind == kindONNX {
		info := a.onnx.info.Clone()
		info.Name, info.Producer, info.Version, info.Custom = o.Name, "quiver", o.Version, nil
		info.Provider, info.Requested, info.BatchRule = "CPU", "CPU", "structure"
		return info
	}
	io := func(name string, width int) serving.IOInfo {
		return serving.IOInfo{Name: name, Kind: serving.KindTensor, ElementType: serving.Float32,
			Shape: []int64{-1, int64(width)}, DimNames: []string{"batch", ""}}
	}
	info := serving.Info{Name: o.Name, Producer: "quiver", GraphName: o.Name, Version: o.Version,
		Provider: "CPU", Requested: "CPU", Batchable: true, BatchRule: "structure",
		BatchReason: "every input and output is a float32 matrix whose first axis is the batch; rows are computed independently"}
	for _, t := range a.towers {
		info.Inputs = append(info.Inputs, io(t.input, t.sizes[0]))
	}
	info.Outputs = append(info.Outputs, io("y", a.outputs()))
	if a.kind == kindTwoTower {
		info.Outputs = append(info.Outputs, io("user_embedding", a.embedding()), io("item_embedding", a.embedding()))
	}
	return info
}

// Info describes the model: inputs, outputs, and metadata. Custom holds
// Options.Metadata and the training progress of the parameters Predict
// serves now (MetaSteps, MetaRows, and MetaLoss once a step has run).
func (t *Trainer) Info() serving.Info {
	info := t.info.Clone()
	info.Custom = t.custom(t.snap.Load())
	return info
}

func (t *Trainer) custom(s *snapshot) map[string]string {
	c := make(map[string]string, len(t.opts.Metadata)+3)
	if t.a.kind == kindONNX {
		for k, v := range t.a.onnx.info.Custom {
			c[k] = v
		}
	}
	for k, v := range t.opts.Metadata {
		c[k] = v
	}
	c[MetaSteps] = strconv.FormatInt(s.step, 10)
	c[MetaRows] = strconv.FormatInt(s.rows, 10)
	if s.step > 0 {
		c[MetaLoss] = strconv.FormatFloat(s.loss, 'g', -1, 64)
	}
	return c
}

// BorrowsInputs reports that Predict keeps no reference to its inputs once
// it returns (serving.InputBorrower).
func (t *Trainer) BorrowsInputs() bool { return true }

// Predict runs the model on inputs with the parameters of the last
// completed step. Inputs are named, typed and shaped as Info lists them
// (float32 matrices [rows, features] for the built-in specs), all with the
// same number of rows. It returns an *serving.InputError for a bad input,
// serving.ErrClosed after Close, and ctx's error when ctx has ended. An
// ONNXModel runs a request of more than Options.MaxBatchRows rows in parts
// of at most that many.
func (t *Trainer) Predict(ctx context.Context, inputs map[string]serving.Tensor) (map[string]serving.Value, error) {
	if t.closed.Load() {
		return nil, serving.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("train: predict: %w", err)
	}
	start := time.Now()
	rows, err := t.checkInputs(inputs, false)
	if err != nil {
		t.st.predictErrors.Add(1)
		return nil, err
	}
	s := t.snap.Load()
	a := t.a
	if a.kind == kindONNX {
		out, err := a.onnx.predict(s, inputs, rows, t.opts.MaxBatchRows)
		if err != nil {
			t.st.predictErrors.Add(1)
			return nil, &serving.RunError{Model: t.opts.Name, Err: err}
		}
		t.st.predictions.Add(1)
		t.st.predictRows.Add(int64(rows))
		t.st.predictLatency.Observe(time.Since(start))
		return out, nil
	}
	out := make(map[string]serving.Value, len(t.info.Outputs))
	k := a.outputs()
	y := make([]float32, rows*k)
	if a.kind == kindTwoTower {
		d := a.embedding()
		u, v := make([]float32, rows*d), make([]float32, rows*d)
		s.tower(a, &a.towers[0], inputs[a.towers[0].input].Data.([]float32), rows, u)
		s.tower(a, &a.towers[1], inputs[a.towers[1].input].Data.([]float32), rows, v)
		for r := range rows {
			y[r] = float32(sigmoid(float64(simd.Dot(u[r*d:(r+1)*d], v[r*d:(r+1)*d]))))
		}
		out["user_embedding"] = serving.TensorValue(serving.NewTensor([]int64{int64(rows), int64(d)}, u))
		out["item_embedding"] = serving.TensorValue(serving.NewTensor([]int64{int64(rows), int64(d)}, v))
	} else {
		s.tower(a, &a.towers[0], inputs[a.towers[0].input].Data.([]float32), rows, y)
		switch a.output {
		case Binary:
			for r, z := range y {
				y[r] = float32(sigmoid(float64(z)))
			}
		case Multiclass:
			softmaxRows(y, k)
		}
	}
	out["y"] = serving.TensorValue(serving.NewTensor([]int64{int64(rows), int64(k)}, y))
	t.st.predictions.Add(1)
	t.st.predictRows.Add(int64(rows))
	t.st.predictLatency.Observe(time.Since(start))
	return out, nil
}

// Update trains on one mini-batch: inputs as for Predict (at least one row,
// at most Options.MaxBatchRows, finite values) and targets as the spec's
// Output documents. It computes the loss and its gradient with gorgonia,
// applies L2 and clipping, takes one solver step and publishes the new
// parameters to Predict atomically.
//
// Updates run one at a time; a call waits for the one in progress, and a
// ctx that ends first returns ctx's error wrapped. A ctx that ends while the
// gradient is computed is noticed before the step is applied, which then is
// not. Bad inputs (*serving.InputError), bad targets (*TargetError), a
// diverged step (ErrDiverged) and a cancelled ctx all leave the trainer as
// it was. After Close, Update returns serving.ErrClosed.
func (t *Trainer) Update(ctx context.Context, inputs map[string]serving.Tensor, targets serving.Tensor) (UpdateStats, error) {
	start := time.Now()
	if t.closed.Load() {
		return UpdateStats{}, serving.ErrClosed
	}
	if err := t.lock(ctx); err != nil {
		t.st.canceled.Add(1)
		return UpdateStats{}, fmt.Errorf("train: update: %w", err)
	}
	defer t.unlock()
	if t.closed.Load() {
		return UpdateStats{}, serving.ErrClosed
	}
	us, err := t.update(ctx, inputs, targets)
	if err != nil {
		return us, err
	}
	t.st.steps.Add(1)
	t.st.rows.Add(int64(us.Rows))
	t.st.updateLatency.Observe(time.Since(start))
	return us, nil
}

func (t *Trainer) update(ctx context.Context, inputs map[string]serving.Tensor, targets serving.Tensor) (UpdateStats, error) {
	rows, err := t.checkInputs(inputs, true)
	if err == nil {
		err = t.checkTargets(targets, rows)
	}
	if err != nil {
		t.st.inputErrors.Add(1)
		return UpdateStats{}, err
	}
	gr, err := t.graphFor(rows)
	if err != nil {
		return UpdateStats{}, err
	}
	t.fill(gr, inputs, targets, rows)
	loss, err := t.gradient(gr)
	if err != nil {
		return UpdateStats{}, err
	}
	us := UpdateStats{Step: t.step + 1, Rows: rows, Loss: loss}
	if !finiteAll(t.grads) || math.IsNaN(loss) || math.IsInf(loss, 0) {
		return UpdateStats{}, t.diverged("loss %v or its gradient is not finite", loss)
	}
	us.GradNorm, us.Clipped = regularize(&t.opts, t.a, t.params, t.grads)
	if err := ctx.Err(); err != nil {
		t.st.canceled.Add(1)
		return UpdateStats{}, fmt.Errorf("train: update: step not applied: %w", err)
	}
	next := zeros(t.a)
	if !step(&t.opts, us.Step, t.params, t.grads, next, t.slots, t.spare) {
		return UpdateStats{}, t.diverged("step %d would make a parameter or the solver state non-finite (gradient norm %g)", us.Step, us.GradNorm)
	}
	for i, p := range next {
		copy(t.params[i], p)
	}
	t.slots, t.spare = t.spare, t.slots
	t.step++
	t.rows += int64(rows)
	t.snap.Store(newSnapshot(t.a, next, t.step, t.rows, loss))
	return us, nil
}

func (t *Trainer) diverged(format string, args ...any) error {
	t.st.diverged.Add(1)
	err := fmt.Errorf("%w: "+format+"; step not applied", append([]any{ErrDiverged}, args...)...)
	t.log.Warn("train: step refused", "model", t.opts.Name, "err", err)
	return err
}

func finiteAll(ps [][]float32) bool {
	for _, p := range ps {
		for _, v := range p {
			if !isFinite32(v) {
				return false
			}
		}
	}
	return true
}

// graphFor returns the graph for batches of rows rows, building it the
// first time: capacities are powers of two, so the trainer builds at most
// log2(MaxBatchRows)+1 graphs.
func (t *Trainer) graphFor(rows int) (*graph, error) {
	c := 1 << bits.Len(uint(rows-1))
	if gr, ok := t.graphs[c]; ok {
		return gr, nil
	}
	gr, err := buildGraph(t.a, t.ptens, c, tensor.Float32, false)
	if err != nil {
		return nil, err
	}
	t.graphs[c] = gr
	return gr, nil
}

// fill copies a batch into the graph's inputs, padding to its capacity.
func (t *Trainer) fill(gr *graph, inputs map[string]serving.Tensor, targets serving.Tensor, rows int) {
	for i, io := range t.info.Inputs {
		fillInput(gr.inputs[i], inputs[io.Name].Data)
	}
	tg := gr.target.Data().([]float32)
	switch y := targets.Data.(type) {
	case []int64: // multiclass: one-hot
		clear(tg)
		k := t.a.outputs()
		for r, c := range y {
			tg[r*k+int(c)] = 1
		}
	case []float32:
		n := copy(tg, y)
		clear(tg[n:])
	}
	mask := gr.mask.Data().([]float32)
	w := float32(1 / float64(rows))
	for r := range mask {
		if r < rows {
			mask[r] = w
		} else {
			mask[r] = 0
		}
	}
}

// gradient runs the graph and copies the gradient into t.grads.
func (t *Trainer) gradient(gr *graph) (float64, error) {
	defer gr.reset()
	if err := gr.run(); err != nil {
		return 0, err
	}
	loss, err := scalar(gr.loss)
	if err != nil {
		return 0, err
	}
	for i, g := range gr.grads {
		v, ok := float32s(g.Value())
		if !ok || len(v) != len(t.grads[i]) {
			return 0, fmt.Errorf("train: gradient %d: got %T of %d values, want %d float32", i, g.Value(), len(v), len(t.grads[i]))
		}
		copy(t.grads[i], v)
	}
	return loss, nil
}

// float32s returns the float32 values of v, a tensor of any rank (a
// scalar's Data is a float32, not a slice) or a scalar value.
func float32s(v G.Value) ([]float32, bool) {
	switch d := v.(type) {
	case *tensor.Dense:
		if d.Dtype() == tensor.Float32 {
			return d.Float32s(), true
		}
	case *G.F32:
		return []float32{float32(*d)}, true
	}
	return nil, false
}

// scalar reads a scalar node's value.
func scalar(n *G.Node) (float64, error) {
	switch v := n.Value().Data().(type) {
	case float32:
		return float64(v), nil
	case float64:
		return v, nil
	}
	return 0, fmt.Errorf("train: loss: got %T, want a float scalar", n.Value().Data())
}

// lock takes the update lock, or gives up when ctx ends first.
func (t *Trainer) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case t.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *Trainer) unlock() { <-t.sem }

// Close waits for an Update or Save in progress, then stops the trainer:
// later calls of Update, Predict, Save and Export return serving.ErrClosed.
// Predictions in flight finish on the parameters they started with. Close
// is safe to call more than once.
func (t *Trainer) Close() error {
	t.sem <- struct{}{}
	defer t.unlock()
	if t.closed.Swap(true) {
		return nil
	}
	var first error
	for _, gr := range t.graphs {
		if err := gr.close(); err != nil && first == nil {
			first = err
		}
	}
	t.graphs = nil
	if t.a.kind == kindONNX {
		t.a.onnx.pool.close()
	}
	return first
}

// Spec returns the model's spec (an ONNXModel's with its Target resolved
// and a copy of its Model bytes).
func (t *Trainer) Spec() Spec { return t.a.spec() }

// Options returns the trainer's options with their defaults applied, as
// Save writes them (Logger is nil).
func (t *Trainer) Options() Options {
	o := t.opts
	o.Metadata = maps.Clone(o.Metadata)
	return o
}
