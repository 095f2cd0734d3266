package serving

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Adaptive selects whether a Batcher sizes its batches from what its own
// runs measure (BatcherOptions.Adaptive).
type Adaptive int

const (
	// AdaptiveAuto is the default: the Batcher's own choice, which is
	// AdaptiveOn (BenchmarkAdaptive compares it with fixed caps and with
	// no batching).
	AdaptiveAuto Adaptive = iota
	// AdaptiveOff merges up to MaxBatchSize rows whenever rows are there.
	AdaptiveOff
	// AdaptiveOn caps each shape group's batches at the size whose runs
	// served the most rows per second.
	AdaptiveOn
)

// String returns "auto", "off" or "on".
func (a Adaptive) String() string {
	switch a {
	case AdaptiveAuto:
		return "auto"
	case AdaptiveOff:
		return "off"
	case AdaptiveOn:
		return "on"
	}
	return "Adaptive(" + strconv.Itoa(int(a)) + ")"
}

// enabled resolves AdaptiveAuto.
func (a Adaptive) enabled() bool { return a != AdaptiveOff }

// Tuning of the size search.
const (
	// A trial runs its cap and the chosen cap in turn, phaseBatches
	// batches at a time, until each has trialBatches measured batches, so
	// that both see the same minutes of a shared machine.
	trialBatches = 8
	phaseBatches = 4
	// A larger trial cap replaces the chosen one only when it serves
	// upMargin more; a smaller one already when it serves no less than
	// downMargin below it. Near-ties keep the smaller batches: they answer
	// sooner, and an engine such as ONNX Runtime pays for every batch size
	// it has not run yet (on conv640, memory first touched cost some 40ms
	// of CPU per image), so a walk up through near-ties costs more than it
	// can win.
	upMargin   = 0.10
	downMargin = -0.02
	// A trial ends after earlyBatches each when one side serves
	// earlyRatio times what the other does.
	earlyBatches = 3
	earlyRatio   = 1.3
	// Between trials the chosen cap runs minInterval batches, doubling
	// after every trial that changes nothing, up to maxInterval.
	minInterval = 16
	maxInterval = 4096
	// rateWeight is the weight of a new batch in a cap's moving average of
	// rows/s (reported in Stats).
	rateWeight = 1.0 / 8
	// Every driftBatches batches at the chosen cap, the fastest of them is
	// compared with the fastest of the previous driftBatches; when it moved
	// driftRatio away (the model, the machine or the load changed) a trial
	// starts at once, and the interval shrinks to a quarter.
	driftBatches = 64
	driftRatio   = 2
	// maxGroups bounds the shape groups remembered per model; the least
	// recently used is forgotten first.
	maxGroups = 64
)

// group is what adaptive batching knows of one shape group: requests that
// can merge (same pinned model, same non-batch dimensions). Its fields are
// guarded by Batcher.mu: caps are read when batches are formed, and every
// worker reports its last batch when it comes back for the next one.
//
// The search walks a ladder of caps (rungs: powers of two up to
// MaxBatchSize, or the allowed batch sizes), starting at the lowest. A
// trial runs batches capped at a neighbouring rung and batches capped at
// the chosen one, in alternate phases, and compares what they served: a
// batch's rows over the wall time its worker spent on it (merge, run,
// split, answer). Wall time, not CPU time, so that a run whose work happens elsewhere (an
// intra-op thread pool, a GPU) counts what it costs. Each side is judged by
// its fastest batch: on a shared machine a batch can only be slowed down
// (descheduled, interrupted), never sped up, and on a shared 2-core
// machine that noise reached 30 times a 2ms run, swamping any mean. A larger
// cap must win by upMargin on the fastest batch and also on all its
// batches together, so that what merging costs now and then (a batch size
// the engine runs for the first time) is counted too.
//
// Comparing caps rather than batch sizes judges what a cap does under the
// load there is: a cap above what the queue holds forms the same batches
// as the chosen one, and such a trial ends at once (see trialBatch). A
// trial that wins moves the choice and tries
// the next rung in the same direction, so the search climbs like a
// doubling; one that loses turns the direction and backs off. A cap of 1
// runs requests one by one.
type group struct {
	key     uint64
	shape   string
	version int64
	rungs   []int // caps, ascending; shared by the batcher's groups
	caps    []capStats
	best    int // index of the chosen cap
	used    uint64

	trial    int    // rung on trial, or -1
	seq      uint64 // trial number, so late reports of an old trial are not counted
	picks    int    // batches taken in this trial
	tw, bw   window // what the trial cap and the chosen cap measured in this trial
	binds    bool   // the trial's batches differ from the chosen cap's
	dir      int    // the rung tried next: best+dir
	since    int    // batches at the chosen cap since the last trial
	interval int
	ref      float64 // fastest batch at the chosen cap in the last drift window, 0 before one
	dw       window  // batches at the chosen cap since the last drift check
	trials   uint64
}

type capStats struct {
	rate    float64 // moving average of rows/s, 0 before the first measured batch
	batches uint64
	rows    uint64
}

// window is what one side of a trial measured: batches seen and the
// largest (warm-ups included), and of the batches measured, the fastest
// and the rows and time of all.
type window struct {
	seen    int
	maxRows int
	batches int
	best    float64 // rows/s of the fastest measured batch
	rows    float64
	busy    time.Duration
}

func (w *window) add(rows int, busy time.Duration, rate float64, measured bool) {
	w.seen++
	w.maxRows = max(w.maxRows, rows)
	if measured {
		w.batches++
		w.best = max(w.best, rate)
		w.rows += float64(rows)
		w.busy += busy
	}
}

// mean returns the rows/s of all the measured batches together.
func (w *window) mean() float64 {
	if w.busy <= 0 {
		return 0
	}
	return w.rows / w.busy.Seconds()
}

// rungsFor returns the caps adaptive batching chooses among.
func rungsFor(maxBatch int, allowed []int) []int {
	if len(allowed) > 0 {
		var r []int
		for _, a := range allowed {
			if a <= maxBatch {
				r = append(r, a)
			}
		}
		return r
	}
	var r []int
	for s := 1; s < maxBatch; s *= 2 {
		r = append(r, s)
	}
	return append(r, maxBatch)
}

func newGroup(key uint64, r *request, rungs []int) *group {
	g := &group{key: key, rungs: rungs, caps: make([]capStats, len(rungs)), trial: -1, dir: 1,
		version: r.tgt.info.Version}
	var sb strings.Builder
	for i, in := range r.ins {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(r.tgt.info.Inputs[i].Name)
		sb.WriteString(fmt.Sprint(in.Shape[1:]))
	}
	g.shape = sb.String()
	// Two batches at the lowest cap (a warm-up and a measured one) before
	// the first trial.
	g.interval = 2
	return g
}

// onTrial reports whether a trial's next batch runs at the trial cap: the
// trial runs in phases of phaseBatches batches at one cap, then as many at
// the other, so that the batches running side by side (MaxInFlight) are
// mostly of the same cap. Alternating batch by batch would run a large
// batch next to a small one, and the large one, taking more than its share
// of the memory bandwidth, would look faster than it is.
func (g *group) onTrial() bool { return g.trial >= 0 && (g.picks/phaseBatches)%2 == 0 }

// cap returns the cap of the group's next batch without choosing it.
func (g *group) cap() int {
	if g.onTrial() {
		return g.rungs[g.trial]
	}
	return g.rungs[g.best]
}

// pick returns the rung the next batch runs under, and the trial it
// belongs to.
func (g *group) pick() (int, uint64) {
	if g.trial < 0 {
		return g.best, g.seq
	}
	r := g.best
	if g.onTrial() {
		r = g.trial
	}
	g.picks++
	return r, g.seq
}

// record takes the measurement of a batch of rows run under rung, which
// kept its worker busy for busy.
func (g *group) record(rung int, seq uint64, rows int, busy time.Duration) {
	c := &g.caps[rung]
	c.batches++
	c.rows += uint64(rows)
	// The first batch at a cap is a warm-up, not measured: engines
	// allocate for a shape they have not run before.
	measured := c.batches > 1 && busy > 0 && rows > 0
	rate := 0.0
	if measured {
		rate = float64(rows) / busy.Seconds()
		if c.rate == 0 {
			c.rate = rate
		} else {
			c.rate += rateWeight * (rate - c.rate)
		}
	}
	if g.trial >= 0 {
		if seq == g.seq {
			g.trialBatch(rung, rows, busy, rate, measured)
		}
		return
	}
	if rung != g.best {
		return
	}
	g.since++
	g.dw.add(rows, busy, rate, measured)
	if g.dw.batches >= driftBatches {
		if g.ref > 0 && (g.dw.best > g.ref*driftRatio || g.dw.best*driftRatio < g.ref) {
			g.interval /= 4
			g.since = g.interval
		}
		g.ref, g.dw = g.dw.best, window{}
	}
	if g.since >= g.interval {
		g.startTrial()
	}
}

func (g *group) trialBatch(rung, rows int, busy time.Duration, rate float64, measured bool) {
	switch rung {
	case g.trial:
		g.tw.add(rows, busy, rate, measured)
	case g.best:
		g.bw.add(rows, busy, rate, measured)
	default:
		return
	}
	if !g.binds && g.tw.seen >= 2 && g.bw.seen >= 2 {
		// A cap that forms the batches the chosen one forms tells nothing
		// apart. Above the chosen cap, that is a load that does not fill
		// it: the trial is over, without trying caps larger still (a
		// burst of requests would find one and pay for a shape it never
		// ran). Unless the batches are larger than half the trial cap:
		// then requests of many rows each may be what sets them, and the
		// next rung up may be the first to hold two. Below, the next rung
		// down is tried at once.
		if g.tw.maxRows == g.bw.maxRows {
			if g.trial > g.best && g.rungs[g.trial] >= 2*g.bw.maxRows {
				g.lose()
			} else {
				g.skipTrial()
			}
			return
		}
		g.binds = true
	}
	tr, br := g.tw.best, g.bw.best
	switch {
	case g.tw.batches >= trialBatches && g.bw.batches >= trialBatches:
		g.endTrial()
	case g.tw.batches >= earlyBatches && g.bw.batches >= earlyBatches && (tr > br*earlyRatio || tr*earlyRatio < br):
		// A wide gap needs fewer batches to be told apart.
		g.endTrial()
	}
}

// startTrial tries the neighbour in the current direction, or the other
// one at the end of the ladder.
func (g *group) startTrial() {
	next := g.best + g.dir
	if next < 0 || next >= len(g.rungs) {
		g.dir = -g.dir
		next = g.best + g.dir
	}
	if next < 0 || next >= len(g.rungs) {
		g.interval = maxInterval // a single rung: nothing to try
		g.since = 0
		return
	}
	g.begin(next)
}

func (g *group) begin(trial int) {
	g.trial, g.seq, g.picks, g.binds = trial, g.seq+1, 0, false
	g.tw, g.bw = window{}, window{}
	g.trials++
}

// skipTrial moves a trial that cannot tell its cap from the chosen one a
// rung further; past the end of the ladder, it ends as a trial lost.
func (g *group) skipTrial() {
	next := g.trial + 1
	if g.trial < g.best {
		next = g.trial - 1
	}
	if next >= 0 && next < len(g.rungs) {
		g.begin(next)
		return
	}
	g.lose()
}

func (g *group) endTrial() {
	tr, br := g.tw.best, g.bw.best
	win := tr > br*(1+downMargin)
	if g.trial > g.best {
		// Merging more must also not lose on all the batches together:
		// the fastest batch shows what a cap can do, the sum what it did
		// (shapes run for the first time included).
		win = tr > br*(1+upMargin) && g.tw.mean() > g.bw.mean()
	}
	if !win {
		g.lose()
		return
	}
	// Keep going the same way.
	if g.trial < g.best {
		g.dir = -1
	} else {
		g.dir = 1
	}
	g.best, g.ref, g.interval = g.trial, 0, 0
	g.trial, g.since, g.dw = -1, 0, window{}
	g.startTrial()
}

// lose ends a trial that changes nothing: the next one goes the other way,
// after twice the batches.
func (g *group) lose() {
	g.dir = -g.dir
	g.interval = min(max(2*g.interval, minInterval), maxInterval)
	g.trial, g.since, g.dw = -1, 0, window{}
}

// AdaptiveGroup is what adaptive batching knows of one shape group.
type AdaptiveGroup struct {
	// Shape names the group by each input's non-batch dimensions, for
	// example "x[3 640 640]".
	Shape string
	// Version is the Info.Version of the model the group runs on.
	Version int64
	// Size is the most rows a batch of the group holds now.
	Size int
	// Trials counts the sizes tried against the chosen one.
	Trials uint64
	// Sizes lists every size the group can choose, ascending.
	Sizes []AdaptiveSize
}

// AdaptiveSize is what the batches run under one size cap achieved.
type AdaptiveSize struct {
	// Size is the cap: the most rows per batch.
	Size int
	// Batches and Rows count the batches run under the cap; the batches
	// hold fewer rows than the cap when fewer are queued.
	Batches uint64
	Rows    uint64
	// RowsPerSecond is a moving average over the cap's recent batches of
	// rows divided by the time a worker spent on the batch (merging,
	// running, splitting, answering); 0 before the first batch past the
	// warm-up.
	RowsPerSecond float64
}

func (g *group) snapshot() AdaptiveGroup {
	a := AdaptiveGroup{Shape: g.shape, Version: g.version, Size: g.rungs[g.best], Trials: g.trials,
		Sizes: make([]AdaptiveSize, len(g.rungs))}
	for i, c := range g.caps {
		a.Sizes[i] = AdaptiveSize{Size: g.rungs[i], Batches: c.batches, Rows: c.rows, RowsPerSecond: c.rate}
	}
	return a
}

// groupOf returns r's shape group, creating it when it is new; nil when
// adaptive batching is off or the model cannot batch. b.mu must be held.
func (b *Batcher) groupOf(r *request) *group {
	if len(b.rungs) < 2 || !r.tgt.info.Batchable || r.rows == 0 {
		return nil
	}
	t := r.tgt
	b.useSeq++
	if g := t.lastGroup; g != nil && g.key == r.key {
		g.used = b.useSeq
		return g
	}
	g := t.groups[r.key]
	if g == nil {
		if len(t.groups) >= maxGroups {
			var old *group
			for _, x := range t.groups {
				if old == nil || x.used < old.used {
					old = x
				}
			}
			delete(t.groups, old.key)
		}
		if t.groups == nil {
			t.groups = map[uint64]*group{}
		}
		g = newGroup(r.key, r, b.rungs)
		t.groups[r.key] = g
	}
	g.used = b.useSeq
	t.lastGroup = g
	return g
}

// adaptiveStats returns the groups of the model served now, by shape;
// b.mu must be held.
func (b *Batcher) adaptiveStats() []AdaptiveGroup {
	t := b.fixed
	if t == nil {
		t = b.last.Load()
	}
	if t == nil || len(t.groups) == 0 {
		return nil
	}
	out := make([]AdaptiveGroup, 0, len(t.groups))
	for _, g := range t.groups {
		out = append(out, g.snapshot())
	}
	slices.SortFunc(out, func(x, y AdaptiveGroup) int { return strings.Compare(x.Shape, y.Shape) })
	return out
}
