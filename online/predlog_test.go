package online

import (
	"strconv"
	"testing"
	"time"
)

// The log's queue keeps joined records only until a compaction, so its
// memory follows the pending predictions, not all predictions ever made.
func TestPredLogQueueStaysBounded(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	l := newPredLog(time.Hour, 1000)
	for i := 0; i < 100000; i++ {
		id := strconv.Itoa(i)
		if !l.add(&record{id: id, at: t0.Add(time.Duration(i) * time.Millisecond)}) {
			t.Fatalf("add %s refused", id)
		}
		if i%10 != 0 { // nine in ten join at once; the rest wait
			if _, ok := l.take(id); !ok {
				t.Fatalf("take %s", id)
			}
		}
		if q := len(l.queue) - l.head; q > 2*l.len()+65 {
			t.Fatalf("after %d adds: queue holds %d records for %d pending", i+1, q, l.len())
		}
	}
	// 10,000 records waited; the last add evicted one to make room for
	// 99999, which then joined.
	if l.len() != 999 || l.evicted != 10000-999 {
		t.Fatalf("pending %d, evicted %d; want 999 and 9001", l.len(), l.evicted)
	}
	if _, ok := l.peek("99990"); !ok {
		t.Fatal("the newest waiting record was evicted")
	}
	if cap(l.queue) > 8*1024 {
		t.Fatalf("queue capacity %d", cap(l.queue))
	}
	// Everything waiting is older than the TTL a day later.
	if n := l.expire(t0.Add(24 * time.Hour)); n != 999 || l.len() != 0 || l.expired != 999 {
		t.Fatalf("expired %d, pending %d", n, l.len())
	}
	if !l.add(&record{id: "99990", at: t0}) {
		t.Fatal("an expired id can be used again")
	}
}
