package serving_test

import (
	. "github.com/quiverml/quiver/serving"

	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// BenchmarkHandoffFloor is the floor under any batcher whose callers block:
// the same 64 single-row callers and one worker per core as
// BenchmarkBatcher, but a batcher cut to the bone (a mutex-guarded slice,
// a wake-up channel, one answer channel per request, batches of
// callers/workers rows) in front of no model at all. Its cpu-ns/op is what
// queueing a request, parking its caller and waking it again costs on this
// machine; BenchmarkBatcher can be no cheaper per request than this plus
// the model's own cost per row.
func BenchmarkHandoffFloor(b *testing.B) {
	const callers = 64
	workers := runtime.GOMAXPROCS(0)
	b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
		h := &handoff{notify: make(chan struct{}, 1), batch: max(callers/workers, 1)}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h.work(stop)
			}()
		}
		defer func() {
			close(stop)
			wg.Wait()
		}()
		reqs := make([]*handoffReq, callers)
		for i := range reqs {
			reqs[i] = &handoffReq{done: make(chan float32, 1)}
		}
		runCallers(b, callers, func(_ context.Context, c int, in map[string]Tensor) error {
			r := reqs[c]
			r.x = in["x"].Data.([]float32)
			if got := h.do(r); got != r.x[0] {
				return fmt.Errorf("answer %v, want %v", got, r.x[0])
			}
			return nil
		}, 64)
	})
}

type handoffReq struct {
	x    []float32
	done chan float32
}

type handoff struct {
	mu     sync.Mutex
	queue  []*handoffReq
	notify chan struct{}
	batch  int
}

func (h *handoff) do(r *handoffReq) float32 {
	h.mu.Lock()
	h.queue = append(h.queue, r)
	full := len(h.queue) >= h.batch
	h.mu.Unlock()
	if full {
		h.wake()
	}
	return <-r.done
}

func (h *handoff) wake() {
	select {
	case h.notify <- struct{}{}:
	default:
	}
}

// work answers batches of h.batch requests, or fewer once the oldest has
// waited a millisecond (the benchmark's last requests).
func (h *handoff) work(stop chan struct{}) {
	timer := time.NewTimer(time.Hour)
	var batch []*handoffReq
	for {
		h.mu.Lock()
		for len(h.queue) < h.batch {
			h.mu.Unlock()
			timer.Reset(time.Millisecond)
			late := false
			select {
			case <-h.notify:
			case <-timer.C:
				late = true
			case <-stop:
				return
			}
			timer.Stop()
			h.mu.Lock()
			if late && len(h.queue) > 0 {
				break
			}
		}
		n := min(h.batch, len(h.queue))
		batch = append(batch[:0], h.queue[:n]...)
		h.queue = append(h.queue[:0], h.queue[n:]...)
		more := len(h.queue) >= h.batch
		h.mu.Unlock()
		if more {
			h.wake()
		}
		for _, r := range batch {
			r.done <- r.x[0]
		}
	}
}
