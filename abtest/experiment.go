package abtest

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
)

// Variant is one arm of an experiment: a name and a relative weight. Weights
// need not sum to 1; a variant gets Weight / (sum of weights) of the
// enrolled units. A weight of 0 keeps the variant defined but sends it no
// traffic (the guardrail stops a variant this way).
type Variant struct {
	Name   string
	Weight float64
}

// Config describes an experiment. The zero value of each optional field is
// documented next to it.
type Config struct {
	// Name identifies the experiment in assignments, statistics and metrics.
	// Required.
	Name string
	// Salt keys the hash. Changing it reshuffles every unit. Empty means Name.
	// It must not contain the bytes 0x00 or 0x01.
	Salt string
	// Variants in layout order: the first variant owns the lowest buckets.
	// At least one is required; names must be unique and non-empty.
	Variants []Variant
	// Control is the variant that serves units that are not enrolled
	// (not targeted, outside coverage, outside the experiment's layer slice)
	// and the baseline of the guardrail. Empty means the first variant.
	Control string
	// Coverage is the fraction of eligible units enrolled, in (0, 1].
	// Zero means 1 (every eligible unit). Raising it only adds units.
	Coverage float64
	// Overrides force a variant for listed unit ids (QA accounts, internal
	// users). Overridden units are not counted as enrolled.
	Overrides map[string]string
	// Target restricts the experiment to units whose attributes satisfy it.
	// Nil means every unit.
	Target Predicate
}

// Reason says why a unit got its variant.
type Reason uint8

// Reasons for an assignment.
const (
	// ReasonHash means the unit is enrolled and its bucket fell in the variant's range.
	ReasonHash Reason = iota
	// ReasonOverride means the unit id is listed in Config.Overrides.
	ReasonOverride
	// ReasonNotTargeted means the Target predicate rejected the unit's attributes.
	ReasonNotTargeted
	// ReasonNotCovered means the unit fell outside Config.Coverage.
	ReasonNotCovered
	// ReasonOutsideLayer means the unit belongs to another slice of the
	// experiment's layer.
	ReasonOutsideLayer
	// ReasonBandit means a bandit picked the variant (see BanditAssigner).
	ReasonBandit
)

var reasonNames = [...]string{"hash", "override", "not_targeted", "not_covered", "outside_layer", "bandit"}

// String returns the reason's name as used in logs and metrics.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", r)
}

// Assignment is the outcome of assigning one unit.
type Assignment struct {
	// Experiment is the experiment's name.
	Experiment string
	// Variant is the variant that serves the unit: the assigned one when
	// Enrolled, an override, or the control otherwise.
	Variant string
	// Index is Variant's position in the experiment's variant list.
	Index int
	// Enrolled is true when the unit is part of the experiment's randomised
	// population, so that its exposures and outcomes count in statistics.
	Enrolled bool
	// Reason says how Variant was chosen.
	Reason Reason
	// Bucket is the unit's bucket under the experiment's salt, in
	// [0, Buckets); meaningful when Reason is ReasonHash.
	Bucket uint32
}

// Range is the half-open bucket range [Lo, Hi) that a variant owns.
type Range struct {
	Variant string
	Lo, Hi  uint32
}

// Assigner picks a variant for a unit. *Experiment (sticky hashing) and
// *BanditAssigner (adaptive) implement it; a Router routes through any.
type Assigner interface {
	// Name identifies the experiment.
	Name() string
	// Variants lists the variant names; Assignment.Index indexes it.
	Variants() []string
	// Assign picks the variant for unit. It must be safe for concurrent use.
	Assign(unit string, attrs Attributes) (Assignment, error)
}

// Experiment assigns units to variants by hashing, deterministically across
// processes and restarts (see the package documentation for the exact
// scheme). It is safe for concurrent use; weight changes are atomic with
// respect to Assign.
type Experiment struct {
	name      string
	salt      string
	names     []string
	index     map[string]int
	control   int
	overrides map[string]int
	target    Predicate
	variant   prefix // XXH64 state after salt ‖ 0x00
	coverage  prefix // XXH64 state after salt ‖ 0x01

	mu    sync.Mutex // serialises writers of state
	state atomic.Pointer[expState]
	seq   uint64 // numbers stops and resumes; guarded by mu

	watchMu  sync.Mutex
	watchers map[uint64]func(Change)
	watchID  uint64
}

// expState is the part of an experiment that can change at run time. It is
// replaced as a whole, never mutated once published.
type expState struct {
	weights  []float64
	bounds   []uint32 // bounds[i] is the exclusive upper bucket of variant i
	covered  uint32   // units with coverage bucket < covered are enrolled
	coverage float64
	layer    *layerGate
	stopped  []bool     // set by Stop, cleared by Resume
	stops    []StopInfo // why each stopped variant was stopped
}

type layerGate struct {
	layer  *Layer
	lo, hi uint32
}

// NewExperiment validates cfg and returns the experiment.
func NewExperiment(cfg Config) (*Experiment, error) {
	if cfg.Name == "" {
		return nil, fmt.Errorf("%w: experiment name is empty, want a non-empty name", ErrConfig)
	}
	salt := cfg.Salt
	if salt == "" {
		salt = cfg.Name
	}
	if !validSalt(salt) {
		return nil, fmt.Errorf("%w: experiment %q: salt %q contains byte 0x00 or 0x01, want neither", ErrConfig, cfg.Name, salt)
	}
	if len(cfg.Variants) == 0 {
		return nil, fmt.Errorf("%w: experiment %q has no variants, want at least one", ErrConfig, cfg.Name)
	}
	e := &Experiment{
		name:  cfg.Name,
		salt:  salt,
		index: make(map[string]int, len(cfg.Variants)),
	}
	weights := make([]float64, len(cfg.Variants))
	for i, v := range cfg.Variants {
		if v.Name == "" {
			return nil, fmt.Errorf("%w: experiment %q: variant %d has an empty name", ErrConfig, cfg.Name, i)
		}
		if _, dup := e.index[v.Name]; dup {
			return nil, fmt.Errorf("%w: experiment %q: %q appears twice, want unique names", ErrDuplicateVariant, cfg.Name, v.Name)
		}
		e.index[v.Name] = i
		e.names = append(e.names, v.Name)
		weights[i] = v.Weight
	}
	if err := checkWeights(cfg.Name, e.names, weights); err != nil {
		return nil, err
	}
	if cfg.Control != "" {
		i, ok := e.index[cfg.Control]
		if !ok {
			return nil, fmt.Errorf("%w: experiment %q: control %q is not a variant, want one of %s", ErrUnknownVariant, cfg.Name, cfg.Control, quoteList(e.names))
		}
		e.control = i
	}
	coverage := cfg.Coverage
	if coverage == 0 {
		coverage = 1
	}
	if !(coverage > 0 && coverage <= 1) {
		return nil, fmt.Errorf("%w: experiment %q: coverage %v, want a fraction in (0, 1]", ErrConfig, cfg.Name, cfg.Coverage)
	}
	if len(cfg.Overrides) > 0 {
		e.overrides = make(map[string]int, len(cfg.Overrides))
		for unit, v := range cfg.Overrides {
			if unit == "" {
				return nil, fmt.Errorf("%w: experiment %q: override for an empty unit id", ErrEmptyUnit, cfg.Name)
			}
			i, ok := e.index[v]
			if !ok {
				return nil, fmt.Errorf("%w: experiment %q: override of unit %q names %q, want one of %s", ErrUnknownVariant, cfg.Name, unit, v, quoteList(e.names))
			}
			e.overrides[unit] = i
		}
	}
	e.target = cfg.Target
	e.variant = newPrefix(salt, sepVariant)
	e.coverage = newPrefix(salt, sepCoverage)
	e.state.Store(&expState{
		stopped:  make([]bool, len(weights)),
		stops:    make([]StopInfo, len(weights)),
		weights:  weights,
		bounds:   computeBounds(weights),
		covered:  fractionToBuckets(coverage),
		coverage: coverage,
	})
	return e, nil
}

func checkWeights(exp string, names []string, w []float64) error {
	sum := 0.0
	for i, x := range w {
		if math.IsNaN(x) || math.IsInf(x, 0) || x < 0 {
			return fmt.Errorf("%w: experiment %q: variant %q has weight %v, want a finite weight >= 0", ErrWeights, exp, names[i], x)
		}
		sum += x
	}
	if !(sum > 0) || math.IsInf(sum, 0) {
		return fmt.Errorf("%w: experiment %q: weights sum to %v, want a finite sum > 0", ErrWeights, exp, sum)
	}
	return nil
}

// computeBounds lays variants out in order over [0, Buckets): variant i owns
// [bounds[i-1], bounds[i]) with bounds[i] = floor(C_i / W * Buckets + 0.5),
// C_i the running sum of weights 0..i and W the total.
func computeBounds(w []float64) []uint32 {
	total := 0.0
	for _, x := range w {
		total += x
	}
	b := make([]uint32, len(w))
	c := 0.0
	for i, x := range w {
		c += x
		b[i] = fractionToBuckets(c / total)
	}
	b[len(b)-1] = Buckets
	return b
}

// Name returns the experiment's name.
func (e *Experiment) Name() string { return e.name }

// Salt returns the salt the experiment hashes with.
func (e *Experiment) Salt() string { return e.salt }

// Variants returns the variant names in layout order.
func (e *Experiment) Variants() []string { return append([]string(nil), e.names...) }

// Control returns the control variant's name.
func (e *Experiment) Control() string { return e.names[e.control] }

// Weights returns the current variants and weights.
func (e *Experiment) Weights() []Variant {
	s := e.state.Load()
	out := make([]Variant, len(e.names))
	for i, n := range e.names {
		out[i] = Variant{Name: n, Weight: s.weights[i]}
	}
	return out
}

// Coverage returns the current coverage fraction.
func (e *Experiment) Coverage() float64 { return e.state.Load().coverage }

// Ranges returns the bucket range each variant currently owns. Together they
// tile [0, Buckets); a variant with weight 0 has an empty range.
func (e *Experiment) Ranges() []Range {
	s := e.state.Load()
	out := make([]Range, len(e.names))
	lo := uint32(0)
	for i, n := range e.names {
		out[i] = Range{Variant: n, Lo: lo, Hi: s.bounds[i]}
		lo = s.bounds[i]
	}
	return out
}

// Assign returns the variant that serves unit. attrs feed the Target
// predicate and may be nil. It allocates nothing on success.
//
// The order of checks is: empty unit id (error), override, layer slice,
// target, coverage, then the variant ranges.
func (e *Experiment) Assign(unit string, attrs Attributes) (Assignment, error) {
	if unit == "" {
		return Assignment{}, fmt.Errorf("%w (experiment %q)", ErrEmptyUnit, e.name)
	}
	a := Assignment{Experiment: e.name}
	if e.overrides != nil {
		if i, ok := e.overrides[unit]; ok {
			a.Variant, a.Index, a.Reason = e.names[i], i, ReasonOverride
			return a, nil
		}
	}
	s := e.state.Load()
	if g := s.layer; g != nil {
		if b := g.layer.prefix.bucket(unit); b < g.lo || b >= g.hi {
			return e.toControl(a, ReasonOutsideLayer), nil
		}
	}
	if e.target != nil && !e.target(attrs) {
		return e.toControl(a, ReasonNotTargeted), nil
	}
	if s.covered < Buckets && e.coverage.bucket(unit) >= s.covered {
		return e.toControl(a, ReasonNotCovered), nil
	}
	b := e.variant.bucket(unit)
	i := 0
	for i < len(s.bounds)-1 && b >= s.bounds[i] {
		i++
	}
	a.Variant, a.Index, a.Enrolled, a.Reason, a.Bucket = e.names[i], i, true, ReasonHash, b
	return a, nil
}

func (e *Experiment) toControl(a Assignment, r Reason) Assignment {
	a.Variant, a.Index, a.Reason = e.names[e.control], e.control, r
	return a
}

// SetWeights changes the weights of the named variants atomically; variants
// not named keep their weight. Units move only across the range boundaries
// that shift, so changing only the first and last weights of the layout
// (a canary listed first or last against the control) is a monotone ramp:
// raising the canary keeps every unit it already had, lowering it removes
// the most recently added units first. On error nothing changes.
func (e *Experiment) SetWeights(weights map[string]float64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.setWeightsLocked(weights, nil)
}

func (e *Experiment) setWeightsLocked(weights map[string]float64, stop *StopInfo) error {
	s := e.state.Load()
	w := append([]float64(nil), s.weights...)
	stopped := append([]bool(nil), s.stopped...)
	stops := s.stops
	for name, x := range weights {
		i, ok := e.index[name]
		if !ok {
			return fmt.Errorf("%w: experiment %q has no variant %q, want one of %s", ErrUnknownVariant, e.name, name, quoteList(e.names))
		}
		if stopped[i] && x != 0 {
			return fmt.Errorf("%w: experiment %q: variant %q was stopped; call Resume before giving it weight %v", ErrStopped, e.name, name, x)
		}
		w[i] = x
		if stop != nil {
			stopped[i] = true
			stops = append([]StopInfo(nil), stops...)
			stops[i] = *stop
		}
	}
	if err := checkWeights(e.name, e.names, w); err != nil {
		return err
	}
	ns := *s
	ns.weights, ns.bounds, ns.stopped, ns.stops = w, computeBounds(w), stopped, stops
	e.state.Store(&ns)
	return nil
}

// SetCoverage changes the enrolled fraction atomically. Raising it keeps
// every enrolled unit enrolled (in the same variant).
func (e *Experiment) SetCoverage(coverage float64) error {
	if !(coverage > 0 && coverage <= 1) {
		return fmt.Errorf("%w: experiment %q: coverage %v, want a fraction in (0, 1]", ErrConfig, e.name, coverage)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ns := *e.state.Load()
	ns.coverage, ns.covered = coverage, fractionToBuckets(coverage)
	e.state.Store(&ns)
	return nil
}

// Stop routes variant to 0%: its weight becomes 0, its units fall to the
// neighbouring ranges, and SetWeights refuses to give it traffic again
// (ErrStopped) until Resume is called, so a ramp cannot silently undo a
// guardrail's decision. Stopping the last variant with traffic is an error.
// The stop is recorded with reason "manual" (see StopWith).
func (e *Experiment) Stop(variant string) error {
	return e.StopWith(variant, StopInfo{Reason: StopReasonManual})
}

// StopWith stops variant as Stop does and records info with it (see
// StopInfo); an empty info.Reason means "manual" and a zero info.Time the
// time of the call. Functions registered with Watch are told.
func (e *Experiment) StopWith(variant string, info StopInfo) error {
	return e.change(Change{Variant: variant, Stopped: true, Info: info})
}

// Resume lets SetWeights give a stopped variant traffic again. Its weight
// stays 0 until then. Functions registered with Watch are told when the
// variant was stopped.
func (e *Experiment) Resume(variant string) error {
	return e.change(Change{Variant: variant, Info: StopInfo{Reason: StopReasonManual}})
}

// Stopped reports whether variant has been stopped (and not resumed).
func (e *Experiment) Stopped(variant string) bool {
	i, ok := e.index[variant]
	return ok && e.state.Load().stopped[i]
}

// joinLayer gates e by g, unless e already belongs to a layer.
func (e *Experiment) joinLayer(g *layerGate) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ns := *e.state.Load()
	if ns.layer != nil {
		return fmt.Errorf("%w: experiment %q already belongs to layer %q", ErrConfig, e.name, ns.layer.layer.name)
	}
	ns.layer = g
	e.state.Store(&ns)
	return nil
}

func (e *Experiment) leaveLayer() {
	e.mu.Lock()
	defer e.mu.Unlock()
	ns := *e.state.Load()
	ns.layer = nil
	e.state.Store(&ns)
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return "[" + strings.Join(q, " ") + "]"
}
