package abtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
)

// Bandit chooses among arms (variants) to maximise reward, learning from the
// rewards recorded with Update. Implementations are safe for concurrent use;
// their state can be saved with Snapshot and loaded with Restore.
type Bandit interface {
	// Arms returns the arm names in the order given at construction.
	Arms() []string
	// Select returns the arm to play next.
	Select() string
	// Update records a reward observed after playing arm.
	Update(arm string, reward float64) error
	// Stats returns each arm's pulls and reward statistics.
	Stats() []ArmStats
	// Snapshot encodes the full state (statistics, parameters, random
	// generator) as JSON.
	Snapshot() ([]byte, error)
	// Restore replaces the state with a Snapshot of a bandit of the same
	// kind and arms. On error the state is unchanged.
	Restore(data []byte) error
}

// ArmStats summarises the rewards recorded for one arm.
type ArmStats struct {
	Arm      string
	Pulls    uint64 // rewards recorded with Update
	Mean     float64
	Variance float64 // unbiased sample variance, 0 below 2 pulls
}

// BanditOptions configure the bandits. Zero values select the defaults
// documented on each field; each constructor reads the fields it needs.
type BanditOptions struct {
	// Seed seeds the PCG random generator (math/rand/v2); equal seeds give
	// equal choices for equal histories. Zero is a valid seed: give each
	// replica its own seed in production.
	Seed uint64
	// Epsilon is epsilon-greedy's exploration probability in [0, 1]. Zero
	// means 0.1; use a negative value for a purely greedy policy.
	Epsilon float64
	// PriorAlpha and PriorBeta are the Beta prior of Thompson-Beta. Zero
	// means 1 (uniform prior).
	PriorAlpha, PriorBeta float64
	// PriorMean, PriorVariance and PriorWeight are Thompson-Gaussian's prior:
	// a guess of each arm's mean, the reward variance, and how many pulls
	// the guess is worth. Zero means 0, 1 and 1.
	PriorMean, PriorVariance, PriorWeight float64
}

// MaxReward bounds the magnitude of a reward Update accepts. Rewards are
// averaged with Welford's updates, whose squared deviations grow as the
// square of the rewards' spread: bounding |reward| by 1e100 keeps every
// arm's statistics finite for any number of pulls a uint64 can count, so a
// run of extreme rewards can never turn the state into NaN or Inf (which
// Snapshot could not encode). Real rewards (conversions, revenue, latency)
// are many orders of magnitude smaller; rescale any that are not.
const MaxReward = 1e100

// Bandit kinds, as recorded in snapshots.
const (
	KindEpsilonGreedy    = "epsilon-greedy"
	KindUCB1             = "ucb1"
	KindThompsonBeta     = "thompson-beta"
	KindThompsonGaussian = "thompson-gaussian"
)

// snapshotFormat identifies a bandit snapshot.
const snapshotFormat = "quiver.abtest.bandit"

type banditParams struct {
	Epsilon       float64 `json:"epsilon,omitempty"`
	PriorAlpha    float64 `json:"prior_alpha,omitempty"`
	PriorBeta     float64 `json:"prior_beta,omitempty"`
	PriorMean     float64 `json:"prior_mean,omitempty"`
	PriorVariance float64 `json:"prior_variance,omitempty"`
	PriorWeight   float64 `json:"prior_weight,omitempty"`
}

type banditCore struct {
	kind   string
	arms   []string
	index  map[string]int
	params banditParams
	// choose picks an arm; it runs with mu held.
	choose func(c *banditCore) int

	mu sync.Mutex
	// stats are this replica's own rewards. view is what Select and Stats
	// read: stats itself, or, once pooled (SetPooled), the pooled
	// statistics of every replica plus this one's rewards since.
	stats  []welford
	view   []welford
	pooled bool
	pcg    *rand.PCG
	rng    *rand.Rand
}

func newCore(kind string, arms []string, seed uint64, p banditParams) (*banditCore, error) {
	if len(arms) == 0 {
		return nil, fmt.Errorf("%w: %s bandit has no arms, want at least one", ErrConfig, kind)
	}
	c := &banditCore{kind: kind, index: make(map[string]int, len(arms)), params: p}
	for _, a := range arms {
		if a == "" {
			return nil, fmt.Errorf("%w: %s bandit: empty arm name", ErrConfig, kind)
		}
		if _, dup := c.index[a]; dup {
			return nil, fmt.Errorf("%w: %s bandit: arm %q appears twice", ErrDuplicateVariant, kind, a)
		}
		c.index[a] = len(c.arms)
		c.arms = append(c.arms, a)
	}
	if err := checkParams(kind, p); err != nil {
		return nil, err
	}
	c.stats = make([]welford, len(arms))
	c.view = c.stats
	c.pcg = rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)
	c.rng = rand.New(c.pcg)
	return c, nil
}

func checkParams(kind string, p banditParams) error {
	bad := func(name string, v float64, want string) error {
		return fmt.Errorf("%w: %s bandit: %s is %v, want %s", ErrConfig, kind, name, v, want)
	}
	switch kind {
	case KindEpsilonGreedy:
		if !(p.Epsilon >= 0 && p.Epsilon <= 1) {
			return bad("epsilon", p.Epsilon, "a probability in [0, 1]")
		}
	case KindThompsonBeta:
		if !(p.PriorAlpha > 0) || math.IsInf(p.PriorAlpha, 0) {
			return bad("prior alpha", p.PriorAlpha, "a finite value > 0")
		}
		if !(p.PriorBeta > 0) || math.IsInf(p.PriorBeta, 0) {
			return bad("prior beta", p.PriorBeta, "a finite value > 0")
		}
	case KindThompsonGaussian:
		if !finite(p.PriorMean) {
			return bad("prior mean", p.PriorMean, "a finite value")
		}
		if !(p.PriorVariance > 0) || math.IsInf(p.PriorVariance, 0) {
			return bad("prior variance", p.PriorVariance, "a finite value > 0")
		}
		if !(p.PriorWeight > 0) || math.IsInf(p.PriorWeight, 0) {
			return bad("prior weight", p.PriorWeight, "a finite value > 0")
		}
	}
	return nil
}

// Arms returns the arm names.
func (c *banditCore) Arms() []string { return append([]string(nil), c.arms...) }

// Kind returns the bandit's kind (KindEpsilonGreedy, ...).
func (c *banditCore) Kind() string { return c.kind }

// Select returns the arm to play next, from the pooled statistics of every
// replica when they are pooled (see SetPooled).
func (c *banditCore) Select() string {
	c.mu.Lock()
	i := c.choose(c)
	c.mu.Unlock()
	return c.arms[i]
}

// Update records reward for arm. Thompson-Beta accepts rewards in [0, 1]
// (1 a conversion, 0 none; fractions count as partial successes); the other
// kinds accept finite rewards in [-MaxReward, MaxReward] (UCB1's
// exploration term assumes [0, 1]). A rejected reward returns ErrReward and
// leaves the state unchanged.
func (c *banditCore) Update(arm string, reward float64) error {
	i, ok := c.index[arm]
	if !ok {
		return fmt.Errorf("%w: %s bandit has no arm %q, want one of %s", ErrUnknownVariant, c.kind, arm, quoteList(c.arms))
	}
	if !finite(reward) {
		return fmt.Errorf("%w: reward %v for arm %q, want a finite number", ErrReward, reward, arm)
	}
	if c.kind == KindThompsonBeta && (reward < 0 || reward > 1) {
		return fmt.Errorf("%w: reward %v for arm %q, want a value in [0, 1] for %s", ErrReward, reward, arm, c.kind)
	}
	if math.Abs(reward) > MaxReward {
		return fmt.Errorf("%w: reward %v for arm %q, want a value in [-%g, %g]", ErrReward, reward, arm, MaxReward, MaxReward)
	}
	c.mu.Lock()
	c.stats[i].add(reward)
	if c.pooled {
		c.view[i].add(reward)
	}
	c.mu.Unlock()
	return nil
}

// Stats returns each arm's statistics: pooled over every replica when they
// are pooled (see SetPooled), this replica's otherwise.
func (c *banditCore) Stats() []ArmStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]ArmStats, len(c.arms))
	for i, a := range c.arms {
		s := c.view[i]
		out[i] = ArmStats{Arm: a, Pulls: s.n, Mean: s.mean, Variance: s.variance()}
	}
	return out
}

type snapshotArm struct {
	Name  string  `json:"name"`
	Pulls uint64  `json:"pulls"`
	Mean  float64 `json:"mean"`
	M2    float64 `json:"m2"`
}

type snapshotDoc struct {
	Format  string        `json:"format"`
	Version int           `json:"version"`
	Kind    string        `json:"kind"`
	Params  banditParams  `json:"params"`
	Arms    []snapshotArm `json:"arms"`
	RNG     []byte        `json:"rng"`
}

// Snapshot encodes the bandit's state as JSON. Its statistics are this
// replica's own rewards, also when they are pooled with other replicas'.
func (c *banditCore) Snapshot() ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	doc := snapshotDoc{Format: snapshotFormat, Version: 1, Kind: c.kind, Params: c.params}
	for i, a := range c.arms {
		s := c.stats[i]
		doc.Arms = append(doc.Arms, snapshotArm{Name: a, Pulls: s.n, Mean: s.mean, M2: s.m2})
	}
	rng, err := c.pcg.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("abtest: snapshot random state: %w", err)
	}
	doc.RNG = rng
	return json.Marshal(doc)
}

// Restore loads a Snapshot taken from a bandit of the same kind and arms.
// The snapshot replaces this replica's own statistics; pooled statistics
// are dropped until the state backend pools again, and then count the
// restored rewards as this replica's (restore a snapshot on one replica
// only, or the pool counts its rewards once per replica).
func (c *banditCore) Restore(data []byte) error {
	var doc snapshotDoc
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("%w: %v", ErrSnapshot, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data after the JSON document", ErrSnapshot)
	}
	if doc.Format != snapshotFormat || doc.Version != 1 {
		return fmt.Errorf("%w: format %q version %d, want %q version 1", ErrSnapshot, doc.Format, doc.Version, snapshotFormat)
	}
	if doc.Kind != c.kind {
		return fmt.Errorf("%w: snapshot of a %q bandit, want %q", ErrSnapshot, doc.Kind, c.kind)
	}
	if err := checkParams(c.kind, doc.Params); err != nil {
		return fmt.Errorf("%w: %v", ErrSnapshot, err)
	}
	if len(doc.Arms) != len(c.arms) {
		return fmt.Errorf("%w: snapshot has %d arms, want %d (%s)", ErrSnapshot, len(doc.Arms), len(c.arms), quoteList(c.arms))
	}
	stats := make([]welford, len(c.arms))
	for i, a := range doc.Arms {
		if a.Name != c.arms[i] {
			return fmt.Errorf("%w: arm %d is %q, want %q", ErrSnapshot, i, a.Name, c.arms[i])
		}
		if !finite(a.Mean) || !finite(a.M2) || a.M2 < 0 || math.Abs(a.Mean) > MaxReward {
			return fmt.Errorf("%w: arm %q: mean %v, m2 %v, want finite values, |mean| <= %g and m2 >= 0", ErrSnapshot, a.Name, a.Mean, a.M2, MaxReward)
		}
		if a.Pulls == 0 && (a.Mean != 0 || a.M2 != 0) {
			return fmt.Errorf("%w: arm %q has no pulls but mean %v, m2 %v, want 0", ErrSnapshot, a.Name, a.Mean, a.M2)
		}
		if c.kind == KindThompsonBeta && (a.Mean < 0 || a.Mean > 1) {
			return fmt.Errorf("%w: arm %q: mean reward %v, want [0, 1] for %s", ErrSnapshot, a.Name, a.Mean, c.kind)
		}
		stats[i] = welford{n: a.Pulls, mean: a.Mean, m2: a.M2}
	}
	pcg := new(rand.PCG)
	if err := pcg.UnmarshalBinary(doc.RNG); err != nil {
		return fmt.Errorf("%w: random state: %v", ErrSnapshot, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.params = doc.Params
	c.stats = stats
	c.view, c.pooled = stats, false
	c.pcg = pcg
	c.rng = rand.New(pcg)
	return nil
}

// Totals returns this replica's own rewards (never the pooled ones): one
// Moments per arm, named "arm/" followed by the arm's name (empty arms are
// left out).
func (c *banditCore) Totals() Totals {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := Totals{Moments: make(map[string]Moments, len(c.arms))}
	for i, a := range c.arms {
		if c.stats[i].n != 0 {
			t.Moments[armTotal+a] = momentsOf(c.stats[i])
		}
	}
	return t
}

// armTotal starts the name of an arm's Moments in a bandit's Totals.
const armTotal = "arm/"

// SetPooled makes Select and Stats use pooled plus the rewards this replica
// recorded after base was taken (see Poolable): a replica then chooses from
// what every replica learned. Moments that are invalid for this bandit (a
// mean outside [0, 1] for Thompson-Beta) return ErrTotals and change
// nothing; names other than "arm/" and one of the bandit's arms are
// ignored.
func (c *banditCore) SetPooled(pooled, base Totals) error {
	if err := checkTotals(pooled, base); err != nil {
		return err
	}
	read := func(t Totals) ([]welford, error) {
		out := make([]welford, len(c.arms))
		for name, m := range t.Moments {
			arm, ok := strings.CutPrefix(name, armTotal)
			i, known := c.index[arm]
			if !ok || !known {
				continue
			}
			if c.kind == KindThompsonBeta && (m.Mean < 0 || m.Mean > 1) {
				return nil, fmt.Errorf("%w: arm %q: mean reward %v, want [0, 1] for %s", ErrTotals, arm, m.Mean, c.kind)
			}
			out[i] = m.welford()
		}
		return out, nil
	}
	p, err := read(pooled)
	if err != nil {
		return err
	}
	b, err := read(base)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	view := make([]welford, len(c.arms))
	for i := range view {
		view[i] = poolMoments(p[i], b[i], c.stats[i])
	}
	c.view, c.pooled = view, true
	return nil
}

// untried returns the first arm with no pulls, or -1.
func (c *banditCore) untried() int {
	for i, s := range c.view {
		if s.n == 0 {
			return i
		}
	}
	return -1
}

// argmax returns the index of the largest score; ties go to the lowest index.
func argmax(n int, score func(int) float64) int {
	best, bestScore := 0, math.Inf(-1)
	for i := range n {
		if s := score(i); s > bestScore {
			best, bestScore = i, s
		}
	}
	return best
}

// EpsilonGreedy plays a uniformly random arm with probability epsilon and
// otherwise the arm with the best mean reward (untried arms first).
type EpsilonGreedy struct{ *banditCore }

// NewEpsilonGreedy returns an epsilon-greedy bandit over arms.
func NewEpsilonGreedy(arms []string, opts BanditOptions) (*EpsilonGreedy, error) {
	eps := opts.Epsilon
	switch {
	case eps == 0:
		eps = 0.1
	case eps < 0:
		eps = 0
	}
	c, err := newCore(KindEpsilonGreedy, arms, opts.Seed, banditParams{Epsilon: eps})
	if err != nil {
		return nil, err
	}
	c.choose = func(c *banditCore) int {
		if c.rng.Float64() < c.params.Epsilon {
			return c.rng.IntN(len(c.arms))
		}
		if i := c.untried(); i >= 0 {
			return i
		}
		return argmax(len(c.arms), func(i int) float64 { return c.view[i].mean })
	}
	return &EpsilonGreedy{c}, nil
}

// UCB1 plays each arm once, then the arm maximising
// mean + sqrt(2 ln(total pulls) / pulls) (Auer, Cesa-Bianchi and Fischer,
// 2002). Rewards should lie in [0, 1].
type UCB1 struct{ *banditCore }

// NewUCB1 returns a UCB1 bandit over arms. It is deterministic: opts.Seed
// is recorded but unused.
func NewUCB1(arms []string, opts BanditOptions) (*UCB1, error) {
	c, err := newCore(KindUCB1, arms, opts.Seed, banditParams{})
	if err != nil {
		return nil, err
	}
	c.choose = func(c *banditCore) int {
		if i := c.untried(); i >= 0 {
			return i
		}
		var total uint64
		for _, s := range c.view {
			total += s.n
		}
		lt := math.Log(float64(total))
		return argmax(len(c.arms), func(i int) float64 {
			s := c.view[i]
			return s.mean + math.Sqrt(2*lt/float64(s.n))
		})
	}
	return &UCB1{c}, nil
}

// ThompsonBeta is Thompson sampling for conversions: each arm's success rate
// has a Beta(PriorAlpha + successes, PriorBeta + failures) posterior; Select
// draws one rate per arm and plays the largest.
type ThompsonBeta struct{ *banditCore }

// NewThompsonBeta returns a Beta-Bernoulli Thompson sampler over arms.
func NewThompsonBeta(arms []string, opts BanditOptions) (*ThompsonBeta, error) {
	p := banditParams{PriorAlpha: opts.PriorAlpha, PriorBeta: opts.PriorBeta}
	if p.PriorAlpha == 0 {
		p.PriorAlpha = 1
	}
	if p.PriorBeta == 0 {
		p.PriorBeta = 1
	}
	c, err := newCore(KindThompsonBeta, arms, opts.Seed, p)
	if err != nil {
		return nil, err
	}
	c.choose = func(c *banditCore) int {
		return argmax(len(c.arms), func(i int) float64 {
			s := c.view[i]
			succ := s.mean * float64(s.n)
			return sampleBeta(c.rng, c.params.PriorAlpha+succ, c.params.PriorBeta+float64(s.n)-succ)
		})
	}
	return &ThompsonBeta{c}, nil
}

// ThompsonGaussian is Thompson sampling for continuous rewards. Each arm's
// mean has a normal posterior N(m, v/(w+n)), where w is PriorWeight, m is the
// prior mean and the sample mean weighted w : n, and v is PriorVariance and
// the sample's squared deviations pooled with weights w : n.
type ThompsonGaussian struct{ *banditCore }

// NewThompsonGaussian returns a Gaussian Thompson sampler over arms.
func NewThompsonGaussian(arms []string, opts BanditOptions) (*ThompsonGaussian, error) {
	p := banditParams{PriorMean: opts.PriorMean, PriorVariance: opts.PriorVariance, PriorWeight: opts.PriorWeight}
	if p.PriorVariance == 0 {
		p.PriorVariance = 1
	}
	if p.PriorWeight == 0 {
		p.PriorWeight = 1
	}
	c, err := newCore(KindThompsonGaussian, arms, opts.Seed, p)
	if err != nil {
		return nil, err
	}
	c.choose = func(c *banditCore) int {
		w := c.params.PriorWeight
		return argmax(len(c.arms), func(i int) float64 {
			s := c.view[i]
			n := float64(s.n)
			m := (w*c.params.PriorMean + n*s.mean) / (w + n)
			v := (w*c.params.PriorVariance + s.m2) / (w + n)
			return m + math.Sqrt(v/(w+n))*c.rng.NormFloat64()
		})
	}
	return &ThompsonGaussian{c}, nil
}

// sampleBeta draws from Beta(a, b) as X/(X+Y) with X ~ Gamma(a), Y ~ Gamma(b).
func sampleBeta(r *rand.Rand, a, b float64) float64 {
	x := sampleGamma(r, a)
	y := sampleGamma(r, b)
	if x+y == 0 {
		return 0.5
	}
	return x / (x + y)
}

// sampleGamma draws from Gamma(shape, 1) with the Marsaglia–Tsang method
// (ACM TOMS 26(3), 2000), boosting shapes below 1 by U^(1/shape).
func sampleGamma(r *rand.Rand, shape float64) float64 {
	if shape < 1 {
		u := r.Float64()
		return sampleGamma(r, shape+1) * math.Pow(u, 1/shape)
	}
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := r.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := r.Float64()
		if u < 1-0.0331*x*x*x*x {
			return d * v
		}
		if math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return d * v
		}
	}
}

// BanditAssigner adapts a Bandit to the Assigner interface, so a Router can
// route each request to the arm the bandit selects. Assignments are not
// sticky: the same unit may get different arms as the bandit learns.
type BanditAssigner struct {
	name   string
	bandit Bandit
	arms   []string
	index  map[string]int
}

// NewBanditAssigner returns an Assigner named name over b's arms.
func NewBanditAssigner(name string, b Bandit) (*BanditAssigner, error) {
	if name == "" || b == nil {
		return nil, fmt.Errorf("%w: bandit assigner needs a name and a bandit", ErrConfig)
	}
	arms := b.Arms()
	idx := make(map[string]int, len(arms))
	for i, a := range arms {
		idx[a] = i
	}
	return &BanditAssigner{name: name, bandit: b, arms: arms, index: idx}, nil
}

// Name returns the assigner's name.
func (a *BanditAssigner) Name() string { return a.name }

// Variants returns the bandit's arms.
func (a *BanditAssigner) Variants() []string { return append([]string(nil), a.arms...) }

// Bandit returns the wrapped bandit; record rewards with its Update.
func (a *BanditAssigner) Bandit() Bandit { return a.bandit }

// Assign returns the arm the bandit selects, enrolled, with ReasonBandit.
func (a *BanditAssigner) Assign(unit string, _ Attributes) (Assignment, error) {
	if unit == "" {
		return Assignment{}, fmt.Errorf("%w (bandit %q)", ErrEmptyUnit, a.name)
	}
	arm := a.bandit.Select()
	return Assignment{Experiment: a.name, Variant: arm, Index: a.index[arm], Enrolled: true, Reason: ReasonBandit}, nil
}
