// Command online runs the online-learning loop on a synthetic click
// stream whose click model changes at a known event, and shows a model
// that keeps learning recover while a copy that stopped learning does
// not.
//
// Every event a user (four session features, drawn afresh and written to
// the feature store) meets an item (four fixed features); a click happens
// with the sigmoid of a linear function of the eight features. At the
// drift event the weights of the four user features change sign. Clicks
// are reported 16 events after the prediction; every 97th never is.
//
// The service serves through an A/B experiment between the registry's
// production and canary aliases (ONNX Runtime), the loop learns from
// every outcome with a logistic regression trained by gradient descent
// (serving/gorgonia/train), and every -every events it publishes the
// learner as a candidate, serves it as a canary and promotes it or stops
// it on held-out events. The static model is version 1, trained before
// the stream starts and never updated.
//
//	go run ./examples/online
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"github.com/quiverml/quiver/abtest"
	"github.com/quiverml/quiver/features"
	"github.com/quiverml/quiver/online"
	"github.com/quiverml/quiver/registry"
	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/gorgonia/train"
	"github.com/quiverml/quiver/serving/onnx"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "online example:", err)
		os.Exit(1)
	}
}

// The stream.
const (
	users    = 200
	items    = 100
	userDim  = 4
	itemDim  = 4
	width    = userDim + itemDim
	step     = 10 * time.Millisecond // event spacing on the synthetic clock
	delay    = 16                    // events from a prediction to its outcome
	lostEach = 97                    // every 97th outcome never comes
)

var (
	start   = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	weights = [width]float64{1.6, -1.3, 1.1, -0.9, 1.4, -1.1, 0.9, 1.3}
	bias    = -0.2
)

// clock is the synthetic clock every component reads.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

// The bars the run must clear (check): after the drift the online model's
// held-out AUC is back within recoverTol of its pre-drift AUC within
// -within events (default defaultWithin), while the static model's mean
// AUC after the drift stays at least staticDrop below its own before.
const (
	recoverTol    = 0.02
	defaultWithin = 5000
	staticDrop    = 0.2
)

type config struct {
	events, drift, every int
	within               int
	seed                 uint64
	verbose              bool
}

func run(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("online", flag.ContinueOnError)
	fs.SetOutput(w)
	var cfg config
	fs.IntVar(&cfg.events, "events", 40000, "stream events")
	fs.IntVar(&cfg.drift, "drift", 20000, "event at which the user features' weights change sign")
	fs.IntVar(&cfg.every, "every", 4000, "joined events between candidates")
	fs.IntVar(&cfg.within, "within", defaultWithin, "events after the drift by which the online model must be back within 0.02 of its pre-drift AUC")
	fs.Uint64Var(&cfg.seed, "seed", 1, "random seed of the stream")
	fs.BoolVar(&cfg.verbose, "v", false, "log what the loop, registry and router do")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.events < 1 || cfg.drift < 0 || cfg.every < 1 || cfg.within < 1 {
		return errors.New("-events, -every and -within must be positive, -drift not negative")
	}
	began := time.Now()
	rep, err := simulate(cfg, w)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d events in %v\n", cfg.events, time.Since(began).Round(time.Millisecond))
	return rep.check()
}

type stream struct {
	rng   *rand.Rand
	drift int
	items [items][itemDim]float32
	store *features.Memory
}

// prob is the true click probability of x at event i.
func (s *stream) prob(x []float32, i int) float64 {
	z := bias
	for j, wt := range weights {
		if i >= s.drift && j < userDim {
			wt = -wt
		}
		z += wt * float64(x[j])
	}
	return 1 / (1 + math.Exp(-z))
}

// userRow draws fresh session features for a user.
func (s *stream) userRow() []float32 {
	x := make([]float32, userDim)
	for j := range x {
		x[j] = float32(s.rng.NormFloat64())
	}
	return x
}

func values(x []float32) map[string]features.Value {
	v := make(map[string]features.Value, len(x))
	for j, f := range x {
		v["f"+strconv.Itoa(j)] = features.Float32(f)
	}
	return v
}

func view(name string, dim int) features.View {
	v := features.View{Name: name, Entity: name + "_id", TTL: 24 * time.Hour}
	for j := 0; j < dim; j++ {
		v.Features = append(v.Features, features.Feature{Name: "f" + strconv.Itoa(j), Kind: features.KindFloat32})
	}
	return v
}

func simulate(cfg config, w io.Writer) (*report, error) {
	ctx := registry.WithActor(context.Background(), "online-example")
	level := slog.LevelWarn
	if cfg.verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	clk := &clock{now: start}

	// The feature store: users' session features, items' fixed ones.
	s := &stream{rng: rand.New(rand.NewPCG(cfg.seed, 0x5eed)), drift: cfg.drift}
	s.store = features.New(features.Options{Clock: clk.Now, Logger: logger})
	defer s.store.Close()
	if err := s.store.Register(view("user", userDim)); err != nil {
		return nil, err
	}
	if err := s.store.Register(view("item", itemDim)); err != nil {
		return nil, err
	}
	for i := range s.items {
		for j := range s.items[i] {
			s.items[i][j] = float32(s.rng.NormFloat64())
		}
		if err := s.store.Put(ctx, "item", features.Row{Entity: "i" + strconv.Itoa(i), EventTime: start.Add(-time.Hour),
			Values: values(s.items[i][:])}); err != nil {
			return nil, err
		}
	}
	userSel, err := s.store.Select("user")
	if err != nil {
		return nil, err
	}
	itemSel, err := s.store.Select("item")
	if err != nil {
		return nil, err
	}

	// Version 1: a logistic regression trained offline on 8,000 rows of
	// the stream as it is before the drift.
	learner, err := train.New(train.LogisticRegression{Features: width},
		train.Options{Name: "clicks", Seed: 7, LearningRate: 0.03, Logger: logger})
	if err != nil {
		return nil, err
	}
	defer learner.Close()
	const batch = 32
	for done := 0; done < 8000; done += batch {
		x := make([]float32, 0, batch*width)
		y := make([]float32, batch)
		for r := range y {
			row := append(s.userRow(), s.items[s.rng.IntN(items)][:]...)
			if s.rng.Float64() < s.prob(row, -1) {
				y[r] = 1
			}
			x = append(x, row...)
		}
		if _, err := learner.Update(ctx, map[string]serving.Tensor{"x": serving.NewTensor([]int64{batch, width}, x)},
			serving.NewTensor([]int64{batch, 1}, y)); err != nil {
			return nil, err
		}
	}
	var v1 bytes.Buffer
	if err := learner.Export(&v1); err != nil {
		return nil, err
	}

	// The registry, serving every version on ONNX Runtime.
	root, err := os.MkdirTemp("", "quiver-online-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)
	store, err := registry.Open(root, registry.Options{Logger: logger, Now: clk.Now})
	if err != nil {
		return nil, err
	}
	ver, err := store.Publish(ctx, "clicks", []registry.File{{Name: "model.onnx", Data: v1.Bytes()}}, registry.Meta{
		Metrics: map[string]float64{}, Lineage: registry.Lineage{DataVersion: "offline pre-drift sample", CodeVersion: "example"},
		Description: "trained offline before the stream"})
	if err != nil {
		return nil, err
	}
	if err := store.SetAlias(ctx, "clicks", "production", ver.Number); err != nil {
		return nil, err
	}
	srv, err := registry.NewServer(store, registry.FileLoader("onnx", onnx.Opener(onnx.Options{})),
		registry.ServerOptions{PollInterval: time.Hour, Logger: logger})
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	if err := srv.Sync(ctx); err != nil {
		return nil, err
	}
	prod, err := srv.Model("clicks", "production")
	if err != nil {
		return nil, err
	}
	canary, err := srv.Model("clicks", "canary")
	if err != nil {
		return nil, err
	}
	static, err := onnx.LoadBytes(ctx, v1.Bytes(), onnx.Options{Name: "static"})
	if err != nil {
		return nil, err
	}
	defer static.Close()

	// The experiment: production, and a canary that gets traffic only
	// while a candidate is judged. The guardrail watches error rates; the
	// p99 of a sub-millisecond model on a shared machine is too noisy to
	// judge by here.
	exp, err := abtest.NewExperiment(abtest.Config{Name: "clicks",
		Variants: []abtest.Variant{{Name: "production", Weight: 80}, {Name: "canary", Weight: 0}}, Control: "production"})
	if err != nil {
		return nil, err
	}
	router, err := abtest.NewRouter(exp, map[string]serving.Model{"production": prod, "canary": canary}, abtest.RouterOptions{Logger: logger})
	if err != nil {
		return nil, err
	}
	defer router.Close()
	guard, err := abtest.NewGuardrail(exp, router.Tracker(), abtest.GuardrailOptions{MaxP99Ratio: -1, Logger: logger})
	if err != nil {
		return nil, err
	}

	loop, err := online.New(online.LearnerFrom(learner), online.Options{
		Name: "clicks", Store: s.store, Features: []*features.Selection{userSel, itemSel}, Router: router,
		BatchSize: batch, HoldoutEvery: 4, WindowSize: 500,
		Baselines: map[string]serving.Model{"static": static},
		Deploy: &online.Deploy{Registry: store, Model: "clicks", Production: prod, Canary: canary, Sync: srv.Sync,
			Experiment: exp, Guardrail: guard, CanaryWeight: 20, Every: cfg.every, EvalEvents: 400, CodeVersion: "example"},
		Clock: clk.Now, Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	defer loop.Close()

	fmt.Fprintf(w, "stream: %d events, click model drifts at event %d; AUC per window of 500 held-out events (every 4th outcome)\n\n", cfg.events, cfg.drift)
	fmt.Fprintf(w, "%-6s %-13s %8s %10s %8s\n", "window", "events", "online", "production", "static")
	rep := &report{drift: cfg.drift, within: cfg.within}
	type due struct {
		event int
		id    string
		label float64
	}
	var queue []due
	deliver := func(upTo int) error {
		n := 0
		for ; n < len(queue) && queue[n].event <= upTo; n++ {
			if err := loop.Outcome(ctx, online.Outcome{RequestID: queue[n].id, Label: queue[n].label}); err != nil {
				return err
			}
		}
		queue = queue[n:]
		return nil
	}
	shownW, shownD := 0, 0
	show := func() {
		for _, win := range loop.Windows()[shownW:] {
			first, last := int(win.First.Sub(start)/step), int(win.Last.Sub(start)/step)
			on, pr, st := win.Metrics[online.LearnerName].AUC, win.Metrics["production"].AUC, win.Metrics["static"].AUC
			mark := ""
			if first < cfg.drift && last >= cfg.drift {
				mark = "  <- drift"
			}
			fmt.Fprintf(w, "%-6d %5d-%-7d %8.4f %10.4f %8.4f%s\n", win.Index, first, last, on, pr, st, mark)
			rep.add(first, last, on, st)
			shownW++
		}
		for _, d := range loop.Decisions()[shownD:] {
			fmt.Fprintf(w, "  canary: %s\n", d)
			shownD++
		}
	}
	for i := 0; i < cfg.events; i++ {
		clk.now = start.Add(time.Duration(i) * step)
		user, item := "u"+strconv.Itoa(s.rng.IntN(users)), s.rng.IntN(items)
		u := s.userRow()
		if err := s.store.Put(ctx, "user", features.Row{Entity: user, EventTime: clk.now, Values: values(u)}); err != nil {
			return nil, err
		}
		label := 0.0
		if s.rng.Float64() < s.prob(append(u, s.items[item][:]...), i) {
			label = 1
		}
		id := "r" + strconv.Itoa(i)
		if _, err := loop.Predict(ctx, online.Request{ID: id, Entities: []string{user, "i" + strconv.Itoa(item)}}); err != nil {
			return nil, err
		}
		if i%lostEach != lostEach-1 {
			queue = append(queue, due{event: i, id: id, label: label})
		}
		if err := deliver(i - delay); err != nil {
			return nil, err
		}
		show()
	}
	if err := deliver(math.MaxInt); err != nil {
		return nil, err
	}
	if err := loop.Flush(ctx); err != nil {
		return nil, err
	}
	show()

	st := loop.Stats()
	fmt.Fprintf(w, "\npredictions %d, outcomes joined %d, pending %d (lost), held out %d, trained rows %d in %d updates\n",
		st.Predictions, st.Joined, st.Pending, st.HeldOut, st.Trained, st.Updates)
	fmt.Fprintf(w, "candidates %d: promoted %d, stopped %d; production serves v%d\n",
		st.Exports, st.Promotions, st.Stops, mustResolve(ctx, store))
	rep.print(w)
	return rep, nil
}

func mustResolve(ctx context.Context, store *registry.Store) int64 {
	v, err := store.Resolve(ctx, "clicks", "production")
	if err != nil {
		return 0
	}
	return v.Number
}

// report sums the windows up: the AUC before the drift, and how soon
// after it the online model came back.
type report struct {
	drift, within    int
	pre, preStatic   []float64
	post, postStatic []float64
	recoveredAt      int // last event of the first window back within 0.02; -1 until then
	recovered        bool
}

func (r *report) add(first, last int, online, static float64) {
	switch {
	case last < r.drift:
		r.pre = append(r.pre, online)
		r.preStatic = append(r.preStatic, static)
	case first >= r.drift:
		r.post = append(r.post, online)
		r.postStatic = append(r.postStatic, static)
		if !r.recovered && len(r.pre) > 0 && online >= mean(r.pre)-recoverTol {
			r.recovered, r.recoveredAt = true, last
		}
	}
}

func (r *report) print(w io.Writer) {
	if len(r.pre) == 0 || len(r.post) == 0 {
		return
	}
	fmt.Fprintf(w, "before the drift: online AUC %.4f, static %.4f (mean of %d windows)\n", mean(r.pre), mean(r.preStatic), len(r.pre))
	fmt.Fprintf(w, "after the drift:  online AUC %.4f, static %.4f (mean of %d windows)\n", mean(r.post), mean(r.postStatic), len(r.post))
	if r.recovered {
		fmt.Fprintf(w, "the online model was back within 0.02 of its pre-drift AUC %d events after the drift\n", r.recoveredAt-r.drift)
	} else {
		fmt.Fprintln(w, "the online model did not come back within 0.02 of its pre-drift AUC")
	}
}

// check fails the run when the online model did not recover within
// r.within events of the drift or the static one did not stay down, so
// that a regression does not exit 0.
func (r *report) check() error {
	if len(r.pre) == 0 || len(r.post) == 0 {
		return nil // a stream too short to judge
	}
	if !r.recovered {
		return errors.New("the online model did not recover after the drift")
	}
	if after := r.recoveredAt - r.drift; after > r.within {
		return fmt.Errorf("the online model was back within %v of its pre-drift AUC %d events after the drift, want at most %d (-within)",
			recoverTol, after, r.within)
	}
	if mean(r.postStatic) > mean(r.preStatic)-staticDrop {
		return fmt.Errorf("the static model's AUC after the drift, %.4f, is not below its pre-drift %.4f", mean(r.postStatic), mean(r.preStatic))
	}
	return nil
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
