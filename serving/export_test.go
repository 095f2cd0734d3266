package serving

import "time"

// NewBatcherWithClock is NewBatcher with the clock adaptive batching times
// batches with, so that tests can give a fake model's runs a cost in
// virtual time. A virtual clock times one run at a time: use MaxInFlight 1.
func NewBatcherWithClock(m Model, opts BatcherOptions, now func() time.Duration) (*Batcher, error) {
	return newBatcher(m, opts, now)
}
