package abtest

import (
	"fmt"
	"time"
)

// StopReasonManual is the reason recorded by Stop and Resume, and by
// StopWith when no reason is given. A Guardrail records "error_rate",
// "p99_latency" or "conversion_rate" (Decision.Reason).
const StopReasonManual = "manual"

// StopInfo says why, when and where a variant was stopped or resumed.
type StopInfo struct {
	// Reason is StopReasonManual, a Guardrail's Decision.Reason, or the
	// caller's own word.
	Reason string
	// Time is when the decision was taken.
	Time time.Time
	// Replica names the replica that took the decision when it was taken
	// on another replica and applied here (ApplyChange); empty when it was
	// taken in this process.
	Replica string
}

// Change is a variant being stopped or resumed, as given to the functions
// registered with Experiment.Watch and taken by Experiment.ApplyChange.
type Change struct {
	// Experiment is the experiment's name (set by the experiment).
	Experiment string
	// Variant is the variant stopped or resumed.
	Variant string
	// Stopped is true for a stop, false for a resume.
	Stopped bool
	// Info says why, when and where.
	Info StopInfo
	// Seq numbers the experiment's changes in the order they took effect,
	// from 1 (set by the experiment). Watch functions run outside the
	// experiment's lock, so two changes racing may reach a function out of
	// order; the higher Seq is the later one.
	Seq uint64
	// Remote is true when the change was taken on another replica and
	// applied here with ApplyChange (set by the experiment), so that a
	// state backend does not send it back.
	Remote bool
}

// StopInfo returns why variant was stopped, and whether it is stopped.
func (e *Experiment) StopInfo(variant string) (StopInfo, bool) {
	i, ok := e.index[variant]
	if !ok {
		return StopInfo{}, false
	}
	s := e.state.Load()
	return s.stops[i], s.stopped[i]
}

// Watch registers fn to be called after each stop or resume that changes
// the experiment (a Stop of a stopped variant or a Resume of a running one
// changes nothing and is not reported). fn runs on the goroutine that made
// the change, after the change took effect and outside the experiment's
// lock; it must return quickly. The returned function unregisters fn.
// A state backend (abtest/redisstate) watches to share guardrail decisions
// between replicas.
func (e *Experiment) Watch(fn func(Change)) (cancel func()) {
	e.watchMu.Lock()
	defer e.watchMu.Unlock()
	if e.watchers == nil {
		e.watchers = make(map[uint64]func(Change))
	}
	e.watchID++
	id := e.watchID
	e.watchers[id] = fn
	return func() {
		e.watchMu.Lock()
		defer e.watchMu.Unlock()
		delete(e.watchers, id)
	}
}

// ApplyChange applies a stop or resume taken on another replica: c.Variant,
// c.Stopped and c.Info are used (Info.Replica should name that replica), the
// other fields are set here, and Watch functions see the change with Remote
// set. Applying a stop of the last variant with traffic fails as Stop does.
func (e *Experiment) ApplyChange(c Change) error {
	c.Remote = true
	return e.change(c)
}

// change stops or resumes c.Variant and tells the watchers.
func (e *Experiment) change(c Change) error {
	if c.Info.Reason == "" {
		c.Info.Reason = StopReasonManual
	}
	if c.Info.Time.IsZero() {
		c.Info.Time = time.Now()
	}
	e.mu.Lock()
	i, ok := e.index[c.Variant]
	if !ok {
		e.mu.Unlock()
		return fmt.Errorf("%w: experiment %q has no variant %q, want one of %s", ErrUnknownVariant, e.name, c.Variant, quoteList(e.names))
	}
	s := e.state.Load()
	if s.stopped[i] == c.Stopped {
		e.mu.Unlock()
		return nil
	}
	if c.Stopped {
		if err := e.setWeightsLocked(map[string]float64{c.Variant: 0}, &c.Info); err != nil {
			e.mu.Unlock()
			return err
		}
	} else {
		ns := *s
		ns.stopped = append([]bool(nil), s.stopped...)
		ns.stops = append([]StopInfo(nil), s.stops...)
		ns.stopped[i], ns.stops[i] = false, StopInfo{}
		e.state.Store(&ns)
	}
	e.seq++
	c.Seq, c.Experiment = e.seq, e.name
	e.mu.Unlock()

	e.watchMu.Lock()
	fns := make([]func(Change), 0, len(e.watchers))
	for _, fn := range e.watchers {
		fns = append(fns, fn)
	}
	e.watchMu.Unlock()
	for _, fn := range fns {
		fn(c)
	}
	return nil
}
