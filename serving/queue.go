package serving

import "slices"

// reqQueue holds queued requests in one FIFO list per priority, highest
// priority first. Taking a batch is a scan from the front that stops once
// the batch is full, so the common case (one priority, one shape) costs a
// copy of the batch's pointers, and the lock it runs under is held briefly.
type reqQueue struct {
	levels []prioLevel // by priority, descending; lists may be empty
	n      int
}

type prioLevel struct {
	prio int
	reqs []*request
}

// emptyLevelsKept bounds the empty priority lists kept for reuse.
const emptyLevelsKept = 8

func (q *reqQueue) len() int { return q.n }

// head returns the oldest request of the highest priority; q must not be empty.
func (q *reqQueue) head() *request {
	for i := range q.levels {
		if reqs := q.levels[i].reqs; len(reqs) > 0 {
			return reqs[0]
		}
	}
	panic("serving: head of an empty queue")
}

func (q *reqQueue) push(r *request) {
	i := 0
	for i < len(q.levels) && q.levels[i].prio > r.prio {
		i++
	}
	if i == len(q.levels) || q.levels[i].prio != r.prio {
		q.prune()
		i = 0
		for i < len(q.levels) && q.levels[i].prio > r.prio {
			i++
		}
		q.levels = slices.Insert(q.levels, i, prioLevel{prio: r.prio})
	}
	q.levels[i].reqs = append(q.levels[i].reqs, r)
	r.queued = true
	q.n++
}

// prune drops empty priority lists once there are more than emptyLevelsKept.
func (q *reqQueue) prune() {
	empty := 0
	for _, l := range q.levels {
		if len(l.reqs) == 0 {
			empty++
		}
	}
	if empty > emptyLevelsKept {
		q.levels = slices.DeleteFunc(q.levels, func(l prioLevel) bool { return len(l.reqs) == 0 })
	}
}

// remove takes r out of the queue; it reports false when r was not queued.
func (q *reqQueue) remove(r *request) bool {
	if !r.queued {
		return false
	}
	for i := range q.levels {
		l := &q.levels[i]
		if l.prio != r.prio {
			continue
		}
		if k := slices.Index(l.reqs, r); k >= 0 {
			l.reqs = slices.Delete(l.reqs, k, k+1)
			r.queued = false
			q.n--
			return true
		}
	}
	return false
}

// take moves requests that fit into batch, in priority then arrival order,
// until the batch holds max rows, and returns the batch and its rows.
func (q *reqQueue) take(batch []*request, max int, fits func(*request) bool) ([]*request, int) {
	rows := 0
	for li := range q.levels {
		l := &q.levels[li]
		reqs := l.reqs
		kept, i := 0, 0
		for ; i < len(reqs) && rows < max; i++ {
			r := reqs[i]
			if rows+r.rows <= max && fits(r) {
				batch = append(batch, r)
				rows += r.rows
				r.queued = false
				q.n--
			} else {
				reqs[kept] = r
				kept++
			}
		}
		n := copy(reqs[kept:], reqs[i:])
		clear(reqs[kept+n:])
		l.reqs = reqs[:kept+n]
		if rows >= max {
			break
		}
	}
	return batch, rows
}
