package online

import (
	"time"
)

// record is one prediction waiting for its outcome: what the model saw and
// said at prediction time. It is never changed once logged, so the row
// that trains the learner is the row the model was served.
type record struct {
	id       string
	entities []string
	row      []float32 // the feature row read at prediction time
	score    float64
	variant  string
	version  int64
	at       time.Time
	done     bool // joined, expired or evicted: no longer in the map
}

// predLog holds the pending predictions by request id, plus a queue in the
// order they were logged, so that expiry and eviction pop from the front in
// O(1) amortised time. Records that joined stay in the queue until they
// reach its front (or a compaction drops them); compaction keeps the queue
// within twice the live records plus a constant. Not safe for concurrent
// use: the Loop guards it with a mutex.
type predLog struct {
	byID  map[string]*record
	queue []*record
	head  int
	ttl   time.Duration
	max   int

	expired, evicted uint64
}

func newPredLog(ttl time.Duration, max int) *predLog {
	return &predLog{byID: make(map[string]*record), ttl: ttl, max: max}
}

func (l *predLog) len() int { return len(l.byID) }

// expire drops the records whose time is at least ttl before now, in the
// order they were logged, and returns how many it dropped.
func (l *predLog) expire(now time.Time) int {
	n := 0
	for l.head < len(l.queue) {
		r := l.queue[l.head]
		if !r.done {
			if now.Sub(r.at) < l.ttl {
				break
			}
			r.done = true
			delete(l.byID, r.id)
			l.expired++
			n++
		}
		l.queue[l.head] = nil
		l.head++
	}
	l.compact()
	return n
}

// add logs r, evicting the oldest record when the log is full. It reports
// false, logging nothing, when r's id is already pending.
func (l *predLog) add(r *record) bool {
	if _, dup := l.byID[r.id]; dup {
		return false
	}
	for len(l.byID) >= l.max && l.head < len(l.queue) {
		old := l.queue[l.head]
		l.queue[l.head] = nil
		l.head++
		if !old.done {
			old.done = true
			delete(l.byID, old.id)
			l.evicted++
		}
	}
	l.byID[r.id] = r
	l.queue = append(l.queue, r)
	l.compact()
	return true
}

// take removes and returns the pending record of id.
func (l *predLog) take(id string) (*record, bool) {
	r, ok := l.byID[id]
	if !ok {
		return nil, false
	}
	r.done = true
	delete(l.byID, id)
	return r, true
}

// peek returns the pending record of id without removing it.
func (l *predLog) peek(id string) (*record, bool) {
	r, ok := l.byID[id]
	return r, ok
}

// compact bounds the queue: it slides the live part to the front once the
// popped prefix is half the slice, and drops joined records once they are
// more than half of what is left.
func (l *predLog) compact() {
	size := len(l.queue) - l.head
	if size > 64 && size > 2*len(l.byID) {
		live := l.queue[:0]
		for _, r := range l.queue[l.head:] {
			if !r.done {
				live = append(live, r)
			}
		}
		clear(l.queue[len(live):])
		l.queue, l.head = live, 0
		return
	}
	if l.head > 64 && l.head*2 >= len(l.queue) {
		n := copy(l.queue, l.queue[l.head:])
		clear(l.queue[n:])
		l.queue, l.head = l.queue[:n], 0
	}
}
