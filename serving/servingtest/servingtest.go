// Package servingtest provides test doubles and test data for code built on
// serving.Model: a fake model whose runs can be observed, held back and
// given a cost (in real or virtual time), and the paths of the
// repository's committed ONNX test models.
//
// The fakes test a Batcher's logic (what merges with what, when batches
// run); they never stand in for a real engine where the engine's behaviour
// is what a test checks.
package servingtest

import (
	"context"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quiverml/quiver/serving"
)

// Doubler is a fake serving.Model that doubles its float32 input "x" (or
// InputName; shape [batch, k]) into output "y" and records the row count of
// every run. Its zero value is ready to use; set the fields before the first
// Predict.
type Doubler struct {
	// ModelName is reported by Info; default "fake".
	ModelName string
	// InputName names the input; default "x".
	InputName string
	// Entered, when set, is sent a value at the start of each run, before
	// the run waits on Gate.
	Entered chan struct{}
	// Gate, when set, blocks every run until it is closed.
	Gate chan struct{}
	// Fail, when set, is returned by every run.
	Fail error
	// Unbatchable makes Info report Batchable false.
	Unbatchable bool
	// Version is reported by Info.
	Version int64
	// Cost, when set, is what a run of rows rows costs: with Clock set, the
	// run advances Clock by it and returns at once; without, the run waits
	// that long on a timer (or until its context ends). See LinearCost and
	// PowerCost.
	Cost func(rows int) time.Duration
	// Clock is the virtual clock Cost advances, or nil for real time.
	Clock *Clock

	mu         sync.Mutex
	runs       []int
	firsts     []float32
	ctxs       []int // request contexts seen per run
	closed     bool
	running    int
	maxRunning int
}

var _ serving.Model = (*Doubler)(nil)

// Info describes x float32[-1 -1] -> y float32[-1 -1].
func (f *Doubler) Info() serving.Info {
	name := f.ModelName
	if name == "" {
		name = "fake"
	}
	return serving.Info{
		Name:        name,
		Inputs:      []serving.IOInfo{{Name: f.input(), Kind: serving.KindTensor, ElementType: serving.Float32, Shape: []int64{-1, -1}}},
		Outputs:     []serving.IOInfo{{Name: "y", Kind: serving.KindTensor, ElementType: serving.Float32, Shape: []int64{-1, -1}}},
		Batchable:   !f.Unbatchable,
		BatchReason: map[bool]string{true: "Unbatchable is set"}[f.Unbatchable],
		Version:     f.Version,
	}
}

// Predict doubles x, after Entered and Gate, then spends Cost.
func (f *Doubler) Predict(ctx context.Context, in map[string]serving.Tensor) (map[string]serving.Value, error) {
	f.mu.Lock()
	f.running++
	f.maxRunning = max(f.maxRunning, f.running)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.running--
		f.mu.Unlock()
	}()
	if f.Entered != nil {
		f.Entered <- struct{}{}
	}
	if f.Gate != nil {
		<-f.Gate
	}
	if err := serving.Validate(f.Info(), in); err != nil {
		return nil, err
	}
	x := in[f.input()].Data.([]float32)
	rows := int(in[f.input()].Shape[0])
	if err := f.spend(ctx, rows); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.runs = append(f.runs, rows)
	if len(x) > 0 {
		f.firsts = append(f.firsts, x[0])
	}
	f.ctxs = append(f.ctxs, len(serving.RequestContexts(ctx)))
	f.mu.Unlock()
	if f.Fail != nil {
		return nil, f.Fail
	}
	y := make([]float32, len(x))
	for i := range x {
		y[i] = 2 * x[i]
	}
	return map[string]serving.Value{"y": serving.TensorValue(serving.Tensor{Shape: in[f.input()].Shape, Data: y})}, nil
}

// spend charges the run's cost: on the virtual clock, or as a wait.
func (f *Doubler) spend(ctx context.Context, rows int) error {
	if f.Cost == nil {
		return nil
	}
	d := f.Cost(rows)
	if f.Clock != nil {
		f.Clock.Advance(d)
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("servingtest: run of %d rows: %w", rows, ctx.Err())
	}
}

// MaxRunning returns the most runs that were inside Predict at once.
func (f *Doubler) MaxRunning() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxRunning
}

// ResetRuns forgets the runs recorded so far (Runs, Firsts, RequestCounts,
// MaxRunning), so a test can look at a later phase on its own.
func (f *Doubler) ResetRuns() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs, f.firsts, f.ctxs = nil, nil, nil
	f.maxRunning = f.running
}

// LinearCost is a run cost of perRun plus perRow for every row: a model
// whose fixed cost per run makes merging win.
func LinearCost(perRun, perRow time.Duration) func(rows int) time.Duration {
	return func(rows int) time.Duration { return perRun + time.Duration(rows)*perRow }
}

// PowerCost is a run cost of unit times rows to the power exp: with exp
// above 1, each row of a larger batch costs more (a model whose working
// set outgrows the caches), so merging loses.
func PowerCost(unit time.Duration, exp float64) func(rows int) time.Duration {
	return func(rows int) time.Duration { return time.Duration(float64(unit) * math.Pow(float64(rows), exp)) }
}

// Clock is a virtual clock for Doubler's Cost: runs advance it instead of
// waiting, so a test sees the same costs however busy the machine is. Its
// zero value reads 0 and is ready to use; it is safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Duration
}

// Now returns the time elapsed on the clock.
func (c *Clock) Now() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now += d
	c.mu.Unlock()
}

func (f *Doubler) input() string {
	if f.InputName == "" {
		return "x"
	}
	return f.InputName
}

// Close marks the model closed.
func (f *Doubler) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

// Closed reports whether Close was called.
func (f *Doubler) Closed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

// Runs returns the row count of every run so far, in order.
func (f *Doubler) Runs() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.runs...)
}

// Firsts returns the first element of x of every run so far.
func (f *Doubler) Firsts() []float32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]float32(nil), f.firsts...)
}

// RequestCounts returns, for every run so far, how many request contexts
// the run carried (serving.RequestContexts).
func (f *Doubler) RequestCounts() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.ctxs...)
}

// Row returns a request of one row of k copies of v for a Doubler.
func Row(v float32, k int) map[string]serving.Tensor {
	d := make([]float32, k)
	for i := range d {
		d[i] = v
	}
	return map[string]serving.Tensor{"x": serving.NewTensor([]int64{1, int64(k)}, d)}
}

// ModelPath returns the path of a committed test model,
// testdata/models/<name>.onnx at the repository's root.
func ModelPath(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "models", name+".onnx")
}

var (
	ortModuleOnce sync.Once
	ortModuleDir  string
	ortModuleErr  error
)

// ThirdPartyModel returns the path of a model shipped in onnxruntime_go's
// test data: real models exported by other tools (scikit-learn, PyTorch).
func ThirdPartyModel(t testing.TB, name string) string {
	t.Helper()
	ortModuleOnce.Do(func() {
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/yalue/onnxruntime_go").Output()
		ortModuleDir, ortModuleErr = strings.TrimSpace(string(out)), err
	})
	if ortModuleErr != nil {
		t.Fatalf("locating the onnxruntime_go module: %v", ortModuleErr)
	}
	return filepath.Join(ortModuleDir, "test_data", name)
}

// Switch is a fake serving.Pinner: it forwards to whichever model was last
// Set, as a registry alias forwards to the version it serves. Pin counts
// the pins still held, so tests can check that every pin is released.
type Switch struct {
	// SwitchName is reported by Info; default "switch".
	SwitchName string

	mu   sync.Mutex
	cur  serving.Model
	held int
}

var _ serving.Pinner = (*Switch)(nil)

// Set makes m the model served from the next Pin on.
func (s *Switch) Set(m serving.Model) {
	s.mu.Lock()
	s.cur = m
	s.mu.Unlock()
}

// Held returns how many pins have not been released.
func (s *Switch) Held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// Pin returns the current model, or an error matching serving.ErrNotReady
// before the first Set.
func (s *Switch) Pin() (serving.Model, func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return nil, nil, fmt.Errorf("servingtest: %s has no model yet: %w", s.name(), serving.ErrNotReady)
	}
	s.held++
	var once sync.Once
	return s.cur, func() {
		once.Do(func() {
			s.mu.Lock()
			s.held--
			s.mu.Unlock()
		})
	}, nil
}

func (s *Switch) name() string {
	if s.SwitchName == "" {
		return "switch"
	}
	return s.SwitchName
}

// Info describes the current model under the Switch's name; only the name
// is set before the first Set.
func (s *Switch) Info() serving.Info {
	m, release, err := s.Pin()
	if err != nil {
		return serving.Info{Name: s.name()}
	}
	defer release()
	info := m.Info()
	info.Name = s.name()
	return info
}

// Predict runs the current model.
func (s *Switch) Predict(ctx context.Context, in map[string]serving.Tensor) (map[string]serving.Value, error) {
	m, release, err := s.Pin()
	if err != nil {
		return nil, err
	}
	defer release()
	return m.Predict(ctx, in)
}

// Close does nothing: the Switch owns none of its models.
func (s *Switch) Close() error { return nil }
