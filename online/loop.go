package online

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quiverml/quiver/abtest"
	"github.com/quiverml/quiver/features"
	"github.com/quiverml/quiver/registry"
	"github.com/quiverml/quiver/serving"
)

// Request asks the loop for one prediction.
type Request struct {
	// ID identifies the request; its outcome names it. Required, at most
	// MaxRequestIDLen bytes, unique among the predictions waiting for an
	// outcome.
	ID string
	// Entities holds one entity key per Options.Features selection, in
	// that order.
	Entities []string
	// Unit is the experiment unit (user, session) when the loop serves
	// through a Router. Empty means Entities[0].
	Unit string
	// Attributes feed the experiment's targeting; may be nil.
	Attributes abtest.Attributes
	// Time is when the prediction is made. Zero means Options.Clock().
	Time time.Time
}

// Prediction is what the loop served and logged.
type Prediction struct {
	RequestID string
	// Score is the probability of the positive class.
	Score float64
	// Variant is the experiment variant that answered ("" without a
	// Router).
	Variant string
	// Version is the registry version that answered, 0 when the model is
	// not a registry alias.
	Version int64
	// Time is the prediction time the log holds.
	Time time.Time
}

// Outcome is the label a prediction earned, reported later.
type Outcome struct {
	// RequestID names the prediction (Request.ID).
	RequestID string
	// Label is 1 (clicked, converted) or 0.
	Label float64
	// Time is when the outcome happened; it may not be before the
	// prediction. Zero means Options.Clock().
	Time time.Time
}

// Event is one joined prediction and outcome, as Options.OnEvent sees it.
type Event struct {
	// Number counts joined events from 0 in join order.
	Number uint64
	// HeldOut is true for the events scored instead of trained on.
	HeldOut bool
	// Request and Entities are the prediction's request id and keys.
	Request  string
	Entities []string
	// Row is the feature row read at prediction time; do not modify it.
	Row []float32
	// Label is the outcome's label.
	Label float64
	// Score, Variant and Version are what was served (see Prediction).
	Score   float64
	Variant string
	Version int64
	// PredictedAt and OutcomeAt are the prediction's and the outcome's
	// times.
	PredictedAt time.Time
	OutcomeAt   time.Time
}

// Window reports the metrics of every scored model over WindowSize
// consecutive held-out events.
type Window struct {
	// Index counts windows from 0.
	Index int
	// FirstEvent and LastEvent are the Event.Number of the window's first
	// and last held-out events; First and Last their prediction times.
	FirstEvent, LastEvent uint64
	First, Last           time.Time
	// Metrics maps LearnerName, the production alias (with Deploy) and
	// every baseline to its metrics over the window. A model whose
	// scoring failed on some events is scored on the rest (Metrics.N).
	Metrics map[string]Metrics
}

// Loop is the online-learning loop: it serves predictions with the
// features of the moment, logs them, joins their outcomes, trains the
// learner in mini-batches, scores held-out events and, with Deploy, turns
// the learner into canaries that are promoted or stopped. It is safe for
// concurrent use; Outcome and Flush serialise on one training lock.
type Loop struct {
	opts    Options
	learner Learner
	log     *slog.Logger
	width   int
	cols    []int // first column of each selection in the row
	statusN int

	closeMu sync.RWMutex // read-held by every call; Close takes it to wait for them
	closed  bool

	mu    sync.Mutex // guards plog
	plog  *predLog
	stats counters

	tmu      sync.Mutex // training: everything below
	events   uint64
	batchX   []float32
	batchY   []float32
	batchN   int
	trainN   uint64 // rows trained since start
	first    time.Time
	last     time.Time
	win      window
	windows  []Window
	nextWin  int
	recent   ring // learner scores of the latest held-out events, for candidate metrics
	dep      *deployer
	lastWin  Window
	haveLast bool
}

type counters struct {
	predictions, predictErrors            atomic.Uint64
	outcomes, joined, unmatched, rejected atomic.Uint64
	invalidRows                           atomic.Uint64
	heldOut, trained, updates, updateErrs atomic.Uint64
	scoreErrors                           atomic.Uint64
	exports, exportErrors                 atomic.Uint64
	promotions, stops                     atomic.Uint64
}

// New returns a loop training learner. It starts no goroutine.
func New(learner Learner, opts Options) (*Loop, error) {
	if opts.Deploy != nil {
		d := *opts.Deploy
		opts.Deploy = &d
	}
	if err := opts.validate(learner); err != nil {
		return nil, err
	}
	l := &Loop{opts: opts, learner: learner}
	l.log = opts.Logger.With("loop", opts.Name)
	for _, s := range opts.Features {
		l.cols = append(l.cols, l.width)
		l.width += s.Width()
		l.statusN = max(l.statusN, s.Len())
	}
	l.plog = newPredLog(opts.TTL, opts.MaxPending)
	l.win = newWindow()
	l.recent = ring{size: opts.WindowSize}
	if opts.Deploy != nil {
		l.dep = &deployer{d: opts.Deploy}
	}
	return l, nil
}

// Width returns the number of float32 features in a row: the sum of the
// selections' widths.
func (l *Loop) Width() int { return l.width }

func (l *Loop) enter() error {
	l.closeMu.RLock()
	if l.closed {
		l.closeMu.RUnlock()
		return fmt.Errorf("online: loop %q: %w", l.opts.Name, ErrClosed)
	}
	return nil
}

func (l *Loop) exit() { l.closeMu.RUnlock() }

// Predict reads the request's features from the store, serves them
// through Options.Router or Options.Model, logs the prediction with the
// row it used, and returns the answer. A malformed request is an error
// wrapping ErrRequest, a request id already waiting for its outcome
// ErrDuplicateRequest, an answer that holds no probability ErrOutput;
// nothing is logged then. A cancelled ctx ends the wait with ctx's error
// wrapped.
func (l *Loop) Predict(ctx context.Context, req Request) (Prediction, error) {
	if err := l.enter(); err != nil {
		return Prediction{}, err
	}
	defer l.exit()
	p, err := l.predict(ctx, req)
	if err != nil {
		l.stats.predictErrors.Add(1)
		return Prediction{}, err
	}
	l.stats.predictions.Add(1)
	return p, nil
}

func (l *Loop) predict(ctx context.Context, req Request) (Prediction, error) {
	if err := l.checkRequest(req); err != nil {
		return Prediction{}, err
	}
	if err := ctx.Err(); err != nil {
		return Prediction{}, fmt.Errorf("online: predict %q: %w", req.ID, err)
	}
	l.mu.Lock()
	_, dup := l.plog.peek(req.ID)
	l.mu.Unlock()
	if dup {
		return Prediction{}, fmt.Errorf("%w: %q is waiting for its outcome", ErrDuplicateRequest, req.ID)
	}
	at := req.Time
	if at.IsZero() {
		at = l.opts.Clock()
	}
	row, err := l.readRow(ctx, req.Entities)
	if err != nil {
		return Prediction{}, err
	}
	inputs := map[string]serving.Tensor{l.opts.Input: serving.NewTensor([]int64{1, int64(l.width)}, row)}
	var served servedBox
	sctx := registry.WithServedHook(ctx, served.set)
	var (
		out     map[string]serving.Value
		variant string
	)
	if l.opts.Router != nil {
		unit := req.Unit
		if unit == "" {
			unit = req.Entities[0]
		}
		res, err := l.opts.Router.Predict(sctx, abtest.Request{Unit: unit, Attributes: req.Attributes, Inputs: inputs})
		if err != nil {
			return Prediction{}, fmt.Errorf("online: predict %q: %w", req.ID, err)
		}
		out, variant = res.Outputs, res.Variant
	} else {
		out, err = l.opts.Model.Predict(sctx, inputs)
		if err != nil {
			return Prediction{}, fmt.Errorf("online: predict %q: %w", req.ID, err)
		}
	}
	score, err := probability(out, l.opts.Output)
	if err != nil {
		return Prediction{}, fmt.Errorf("online: predict %q: %w", req.ID, err)
	}
	version := served.get().Version
	rec := &record{id: req.ID, entities: append([]string(nil), req.Entities...), row: row,
		score: score, variant: variant, version: version, at: at}
	l.mu.Lock()
	l.plog.expire(l.opts.Clock())
	ok := l.plog.add(rec)
	l.mu.Unlock()
	if !ok {
		return Prediction{}, fmt.Errorf("%w: %q is waiting for its outcome", ErrDuplicateRequest, req.ID)
	}
	return Prediction{RequestID: req.ID, Score: score, Variant: variant, Version: version, Time: at}, nil
}

func (l *Loop) checkRequest(req Request) error {
	if req.ID == "" {
		return fmt.Errorf("%w: empty request id", ErrRequest)
	}
	if len(req.ID) > MaxRequestIDLen {
		return fmt.Errorf("%w: request id of %d bytes, want at most %d", ErrRequest, len(req.ID), MaxRequestIDLen)
	}
	if len(req.Entities) != len(l.opts.Features) {
		return fmt.Errorf("%w: request %q has %d entity keys, want %d (one per selection: %s)",
			ErrRequest, req.ID, len(req.Entities), len(l.opts.Features), l.selectionNames())
	}
	for i, e := range req.Entities {
		if e == "" {
			return fmt.Errorf("%w: request %q: empty entity key for view %q", ErrRequest, req.ID, l.opts.Features[i].View())
		}
	}
	if !req.Time.IsZero() {
		if err := features.CheckEventTime(req.Time); err != nil {
			return fmt.Errorf("%w: request %q: %w", ErrRequest, req.ID, err)
		}
	}
	return nil
}

func (l *Loop) selectionNames() string {
	s := ""
	for i, sel := range l.opts.Features {
		if i > 0 {
			s += ", "
		}
		s += sel.View()
	}
	return s
}

// readRow reads the request's features into a new row: the row is kept
// in the prediction log, so it is never reused.
func (l *Loop) readRow(ctx context.Context, entities []string) ([]float32, error) {
	row := make([]float32, l.width)
	status := make([]features.Status, l.statusN)
	for i, sel := range l.opts.Features {
		dst := row[l.cols[i] : l.cols[i]+sel.Width()]
		if err := l.opts.Store.GetMany(ctx, sel, entities[i:i+1], dst, status[:sel.Len()]); err != nil {
			return nil, fmt.Errorf("online: read features of %s %q: %w", sel.View(), entities[i], err)
		}
	}
	return row, nil
}

// servedBox receives the served hook, which may run on another goroutine
// (a batcher's) before Predict returns.
type servedBox struct {
	mu sync.Mutex
	s  registry.Served
}

func (b *servedBox) set(s registry.Served) {
	b.mu.Lock()
	b.s = s
	b.mu.Unlock()
}

func (b *servedBox) get() registry.Served {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.s
}

// probability reads one probability from a model's answer.
func probability(out map[string]serving.Value, name string) (float64, error) {
	if name == "" {
		if len(out) != 1 {
			names := make([]string, 0, len(out))
			for k := range out {
				names = append(names, k)
			}
			return 0, fmt.Errorf("%w: model answered %d outputs %q, want one (or set Options.Output)", ErrOutput, len(out), names)
		}
		for k := range out {
			name = k
		}
	}
	v, ok := out[name]
	if !ok {
		return 0, fmt.Errorf("%w: model gave no output %q", ErrOutput, name)
	}
	if v.Kind != serving.KindTensor {
		return 0, fmt.Errorf("%w: output %q is a %s, want a tensor", ErrOutput, name, v.Kind)
	}
	var p float64
	switch d := v.Tensor.Data.(type) {
	case []float32:
		if len(d) != 1 {
			return 0, fmt.Errorf("%w: output %q holds %d values, want 1 probability per row", ErrOutput, name, len(d))
		}
		p = float64(d[0])
	case []float64:
		if len(d) != 1 {
			return 0, fmt.Errorf("%w: output %q holds %d values, want 1 probability per row", ErrOutput, name, len(d))
		}
		p = d[0]
	default:
		return 0, fmt.Errorf("%w: output %q is %s, want float32 or float64", ErrOutput, name, v.Tensor.ElementType())
	}
	if !(p >= 0 && p <= 1) {
		return 0, fmt.Errorf("%w: output %q is %v, want a probability in [0, 1]", ErrOutput, name, p)
	}
	return p, nil
}

// Outcome joins an outcome to its logged prediction and learns from it:
// a held-out event (every Options.HoldoutEvery-th) is scored, any other
// joins the current mini-batch, which trains the learner once it holds
// Options.BatchSize rows. With Deploy, it also publishes and judges
// candidates when their turn comes; all of this runs on the caller's
// goroutine, one Outcome at a time.
//
// An empty request id, a label other than 0 or 1, or an outcome time
// before the prediction is an error wrapping ErrOutcome, and the
// prediction keeps waiting. A request id with no pending prediction
// (never made, already joined, expired) is ErrUnknownRequest. A cancelled
// ctx returns its error wrapped; a joined row whose update it interrupted
// stays in the batch for the next update. An update the learner refuses
// is logged and counted (Stats.UpdateErrors) and its rows dropped, so one
// bad batch cannot wedge the loop.
func (l *Loop) Outcome(ctx context.Context, o Outcome) error {
	if err := l.enter(); err != nil {
		return err
	}
	defer l.exit()
	l.stats.outcomes.Add(1)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("online: outcome %q: %w", o.RequestID, err)
	}
	if err := checkOutcome(o); err != nil {
		l.stats.rejected.Add(1)
		return err
	}
	now := l.opts.Clock()
	if o.Time.IsZero() {
		o.Time = now
	}
	l.mu.Lock()
	l.plog.expire(now)
	r, ok := l.plog.peek(o.RequestID)
	if ok && o.Time.Before(r.at) {
		l.mu.Unlock()
		l.stats.rejected.Add(1)
		return fmt.Errorf("%w: request %q: outcome at %s is before its prediction at %s",
			ErrOutcome, o.RequestID, o.Time.Format(time.RFC3339Nano), r.at.Format(time.RFC3339Nano))
	}
	if ok {
		l.plog.take(o.RequestID)
	}
	l.mu.Unlock()
	if !ok {
		l.stats.unmatched.Add(1)
		return fmt.Errorf("%w: %q (never predicted, already joined, or expired after %v)", ErrUnknownRequest, o.RequestID, l.opts.TTL)
	}
	l.stats.joined.Add(1)
	l.tmu.Lock()
	defer l.tmu.Unlock()
	return l.learn(ctx, r, o)
}

func checkOutcome(o Outcome) error {
	if o.RequestID == "" {
		return fmt.Errorf("%w: empty request id", ErrOutcome)
	}
	if o.Label != 0 && o.Label != 1 {
		return fmt.Errorf("%w: request %q: label %v, want 0 or 1", ErrOutcome, o.RequestID, o.Label)
	}
	return nil
}

// Flush trains the learner on the rows of the current mini-batch now,
// however few. Sources that acknowledge outcomes only once they have
// trained the learner (RedisStreamSource) call it before acknowledging.
func (l *Loop) Flush(ctx context.Context) error {
	if err := l.enter(); err != nil {
		return err
	}
	defer l.exit()
	l.tmu.Lock()
	defer l.tmu.Unlock()
	return l.update(ctx)
}

// learn runs with tmu held.
func (l *Loop) learn(ctx context.Context, r *record, o Outcome) error {
	n := l.events
	l.events++
	held := n%uint64(l.opts.HoldoutEvery) == uint64(l.opts.HoldoutEvery-1)
	if l.opts.OnEvent != nil {
		l.opts.OnEvent(Event{Number: n, HeldOut: held, Request: r.id, Entities: r.entities, Row: r.row,
			Label: o.Label, Score: r.score, Variant: r.variant, Version: r.version, PredictedAt: r.at, OutcomeAt: o.Time})
	}
	for _, x := range r.row {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			l.stats.invalidRows.Add(1)
			l.log.Warn("online: row with a value that is not finite, not learned from", "request", r.id)
			return nil
		}
	}
	var err error
	if held {
		l.stats.heldOut.Add(1)
		l.evaluate(ctx, n, r, o.Label)
	} else {
		l.batchX = append(l.batchX, r.row...)
		l.batchY = append(l.batchY, float32(o.Label))
		l.batchN++
		if l.first.IsZero() || r.at.Before(l.first) {
			l.first = r.at
		}
		if r.at.After(l.last) {
			l.last = r.at
		}
		if l.batchN >= l.opts.BatchSize {
			err = l.update(ctx)
		}
	}
	if l.dep != nil {
		l.dep.since++
		if l.dep.since >= l.dep.d.Every && l.dep.canary == 0 && err == nil {
			// The candidate includes every row joined so far.
			if err = l.update(ctx); err == nil {
				l.publish(ctx)
			}
		}
	}
	return err
}

// update trains the learner on the batch; tmu held.
func (l *Loop) update(ctx context.Context) error {
	if l.batchN == 0 {
		return nil
	}
	n := l.batchN
	inputs := map[string]serving.Tensor{l.opts.Input: serving.NewTensor([]int64{int64(n), int64(l.width)}, l.batchX)}
	targets := serving.NewTensor([]int64{int64(n), 1}, l.batchY)
	err := l.learner.Update(ctx, inputs, targets)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("online: update on %d rows: %w", n, err)
	}
	// The learner may keep what it was given: the next batch gets new
	// slices.
	l.batchX, l.batchY, l.batchN = make([]float32, 0, l.opts.BatchSize*l.width), make([]float32, 0, l.opts.BatchSize), 0
	if err != nil {
		l.stats.updateErrs.Add(1)
		l.log.Error("online: learner refused a mini-batch; its rows are dropped", "rows", n, "error", err)
		return nil
	}
	l.stats.updates.Add(1)
	l.trainN += uint64(n)
	l.stats.trained.Add(uint64(n))
	return nil
}

// score predicts one row with m and reads its probability and the
// registry version that answered.
func (l *Loop) score(ctx context.Context, m interface {
	Predict(context.Context, map[string]serving.Tensor) (map[string]serving.Value, error)
}, row []float32) (float64, int64, error) {
	var served servedBox
	out, err := m.Predict(registry.WithServedHook(ctx, served.set),
		map[string]serving.Tensor{l.opts.Input: serving.NewTensor([]int64{1, int64(l.width)}, row)})
	if err != nil {
		return 0, 0, err
	}
	p, err := probability(out, l.opts.Output)
	return p, served.get().Version, err
}

// evaluate scores a held-out event with the learner, production, the
// baselines and the candidate being judged; tmu held.
func (l *Loop) evaluate(ctx context.Context, n uint64, r *record, label float64) {
	if s, _, err := l.score(ctx, l.learner, r.row); err == nil {
		l.win.add(LearnerName, s, label)
		l.recent.add(s, label)
	} else {
		l.scoreFailed(LearnerName, err)
	}
	var prod float64
	prodVersion := int64(-1)
	if l.dep != nil {
		s, v, err := l.score(ctx, l.dep.d.Production, r.row)
		if err == nil {
			l.win.add(l.dep.d.ProductionAlias, s, label)
			prod, prodVersion = s, v
		} else if !errors.Is(err, serving.ErrNotReady) {
			l.scoreFailed(l.dep.d.ProductionAlias, err)
		}
	}
	for name, m := range l.opts.Baselines {
		if s, _, err := l.score(ctx, m, r.row); err == nil {
			l.win.add(name, s, label)
		} else {
			l.scoreFailed(name, err)
		}
	}
	l.win.event(n, r.at)
	if l.win.events >= l.opts.WindowSize {
		l.closeWindow()
	}
	if l.dep != nil && l.dep.canary != 0 {
		l.judge(ctx, r, label, prod, prodVersion)
	}
}

func (l *Loop) scoreFailed(model string, err error) {
	l.stats.scoreErrors.Add(1)
	l.log.Warn("online: scoring a held-out event failed", "model", model, "error", err)
}

func (l *Loop) closeWindow() {
	w := Window{Index: l.nextWin, FirstEvent: l.win.firstN, LastEvent: l.win.lastN,
		First: l.win.first, Last: l.win.last, Metrics: make(map[string]Metrics, len(l.win.acc))}
	for name, a := range l.win.acc {
		if len(a.scores) == 0 {
			continue
		}
		m, err := Evaluate(a.scores, a.labels)
		if err != nil { // scores are probabilities and labels 0/1 by construction
			l.log.Error("online: window metrics", "model", name, "error", err)
		}
		w.Metrics[name] = m
	}
	l.nextWin++
	if len(l.windows) >= l.opts.MaxWindows {
		copy(l.windows, l.windows[1:])
		l.windows = l.windows[:len(l.windows)-1]
	}
	l.windows = append(l.windows, w)
	l.lastWin, l.haveLast = w, true
	args := []any{"window", w.Index, "first_event", w.FirstEvent, "last_event", w.LastEvent}
	for name, m := range w.Metrics {
		args = append(args, slog.String(name, m.String()))
	}
	l.log.Info("online: window", args...)
	l.win.reset()
}

// Windows returns the window reports kept, oldest first.
func (l *Loop) Windows() []Window {
	l.tmu.Lock()
	defer l.tmu.Unlock()
	out := make([]Window, len(l.windows))
	for i, w := range l.windows {
		out[i] = w
		out[i].Metrics = make(map[string]Metrics, len(w.Metrics))
		for k, v := range w.Metrics {
			out[i].Metrics[k] = v
		}
	}
	return out
}

// Close stops accepting calls and waits for those in progress. Later calls
// return ErrClosed. It drops the pending predictions; it closes neither
// the learner nor the models and store the loop uses, which belong to the
// caller. Close is idempotent.
func (l *Loop) Close() error {
	l.closeMu.Lock()
	defer l.closeMu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	l.mu.Lock()
	l.plog = newPredLog(l.opts.TTL, l.opts.MaxPending)
	l.mu.Unlock()
	return nil
}

// window accumulates the scores of one window, per model.
type window struct {
	acc           map[string]*scored
	events        int
	firstN, lastN uint64
	first, last   time.Time
}

type scored struct{ scores, labels []float64 }

func newWindow() window { return window{acc: make(map[string]*scored)} }

func (w *window) add(model string, s, label float64) {
	a := w.acc[model]
	if a == nil {
		a = &scored{}
		w.acc[model] = a
	}
	a.add(s, label)
}

func (w *window) event(n uint64, at time.Time) {
	if w.events == 0 {
		w.firstN, w.first = n, at
	}
	w.lastN, w.last = n, at
	w.events++
}

func (w *window) reset() {
	for _, a := range w.acc {
		a.reset()
	}
	w.events = 0
}

// ring keeps the latest size scores and labels.
type ring struct {
	size           int
	scores, labels []float64
	next           int
}

func (r *ring) add(s, label float64) {
	if len(r.scores) < r.size {
		r.scores = append(r.scores, s)
		r.labels = append(r.labels, label)
		return
	}
	r.scores[r.next], r.labels[r.next] = s, label
	r.next = (r.next + 1) % r.size
}
