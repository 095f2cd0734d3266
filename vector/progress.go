package vector

import (
	"sync/atomic"
	"time"
)

// Progress reports how far a long operation on an HNSW index has got; see
// Options.Progress.
type Progress struct {
	// Op names the operation: "add" (Add and Upsert), "load" (LoadHNSW)
	// or "compact" (Compact, also when Delete starts it).
	Op string
	// Done is the number of items finished so far, out of Total. Done
	// equals Total only in the last call of an operation that succeeded.
	Done, Total int
}

// progressInterval is the least time between two intermediate progress
// calls: often enough for a progress bar or a log line, rarely enough that
// a slow callback costs the operation nothing measurable.
const progressInterval = 100 * time.Millisecond

// progressMin is the size below which an operation reports only its end:
// it finishes in milliseconds, and a reporting goroutine would cost more
// than the reports are worth.
const progressMin = 64

// progress delivers the reports of one operation. Workers count finished
// items with add; a goroutine of its own calls the callback every
// progressInterval with the count, so no worker ever waits for the
// callback and the callback never runs under a lock the operation holds.
// stop, which the operation calls after releasing its locks, ends that
// goroutine and makes the last call, so calls never overlap and none
// happens after the operation returns.
type progress struct {
	fn       func(Progress)
	op       string
	total    int
	done     atomic.Int64
	complete bool // set by finish, read by stop, both on the operation's goroutine
	last     int  // the last Done reported, -1 before any
	stopc    chan struct{}
	exited   chan struct{}
}

// startProgress returns the reporter of an operation over total items, or
// nil (whose methods do nothing) when fn is nil.
func startProgress(fn func(Progress), op string, total int) *progress {
	if fn == nil {
		return nil
	}
	p := &progress{fn: fn, op: op, total: total, last: -1}
	if total >= progressMin {
		p.stopc = make(chan struct{})
		p.exited = make(chan struct{})
		go p.run()
	}
	return p
}

func (p *progress) run() {
	defer close(p.exited)
	t := time.NewTicker(progressInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stopc:
			return
		case <-t.C:
			// Done reaches Total only once the operation has succeeded.
			p.report(min(int(p.done.Load()), p.total-1))
		}
	}
}

// report calls the callback when done moved since the last call, which
// keeps Done strictly increasing.
func (p *progress) report(done int) {
	if done <= p.last {
		return
	}
	p.last = done
	p.fn(Progress{Op: p.op, Done: done, Total: p.total})
}

// add counts n more items finished; safe from any goroutine.
func (p *progress) add(n int) {
	if p != nil {
		p.done.Add(int64(n))
	}
}

// finish marks the operation successful, so that stop reports Done == Total.
func (p *progress) finish() {
	if p != nil {
		p.complete = true
	}
}

// stop ends the reports: it waits for the reporting goroutine to exit and
// then, when the operation succeeded, makes the final Done == Total call.
// A failed operation ends without it.
func (p *progress) stop() {
	if p == nil {
		return
	}
	if p.stopc != nil {
		close(p.stopc)
		<-p.exited
	}
	if p.complete {
		p.report(p.total)
	}
}
