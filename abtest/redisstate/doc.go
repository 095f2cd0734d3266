// Package redisstate shares the state of abtest experiments across the
// replicas of a service through Redis, so that every replica decides from
// the global numbers: a Tracker's statistics, a bandit's rewards and a
// guardrail's stop decisions.
//
// Assignment needs no sharing: it is a hash of the unit id, the same on
// every replica. What replicas must share is what they learn:
//
//	rdb := redis.NewClient(&redis.Options{Addr: "redis:6379"})
//	sync, err := redisstate.New(rdb, redisstate.Options{ReplicaID: podName})
//	if err != nil { ... }
//	_ = sync.Tracker(router.Tracker())       // pooled statistics
//	_ = sync.Experiment(exp)                 // shared stops and resumes
//	_ = sync.Bandit("ranker", bandit)        // pooled rewards
//	go sync.Run(ctx)                         // flush every 250ms
//	defer sync.Close()
//	guard, _ := abtest.NewGuardrail(exp, router.Tracker(), abtest.GuardrailOptions{})
//	go guard.Run(ctx, 10*time.Second)        // judges every replica's numbers
//
// # How numbers are pooled
//
// The request path never waits for Redis: Expose, ObserveRequest,
// Convert, Observe and a bandit's Update and Select work on in-process
// counters as without this package. Every FlushInterval, Run sends each
// attached holder's cumulative totals (the counters that changed since the
// last acknowledged flush) to Redis in one pipelined round trip, where a
// Lua script adds them to an aggregate hash and returns the aggregate on
// the same round trip. The holder then reads pooled numbers: the aggregate
// as of that flush plus what this replica recorded since (see
// abtest.Poolable). Counters add (HINCRBY); means and variances merge
// exactly as moments (count, mean, sum of squared deviations), so a
// pooled Welch's t-test or Thompson sampler sees what one process fed
// every value would see.
//
// Consistency bounds, with F = Options.FlushInterval and R one Redis round
// trip:
//
//   - the pooled numbers a replica reads were current at most F + R ago
//     (Stats.Staleness; the quiver_abtest_sync_staleness_seconds gauge);
//   - an event recorded on one replica is in every replica's pooled
//     numbers within 2F + 2R (its replica's next flush, then the reader's);
//     this replica's own events show at once;
//   - a stop or resume taken on one replica (Experiment.Stop, Resume or a
//     Guardrail) is written at once, and applied by every other replica at
//     its next flush: within F + 2R.
//
// # Exactly once
//
// A flush sends cumulative values, and Redis keeps, per replica process
// (an incarnation: a random id drawn by New), a record of the values it
// last applied; the script adds the difference. A flush whose reply was
// lost, retried, or delayed and run twice therefore adds nothing twice: a
// repeated value adds zero, and a per-incarnation sequence number refuses
// a call older than one already applied. Nothing is queued while Redis is
// unreachable, so nothing needs bounding: what is unsent is the difference
// between the live counters and the last acknowledged values, the same
// size after a second as after a day.
//
// Counters are exact up to 2^53 per replica (the scripts compute in
// doubles) and 2^63 in the aggregate.
//
// # When Redis fails
//
// A flush that cannot reach Redis fails (Flush returns an error wrapping
// ErrRedis; Err and Stats report it) and is retried at the next interval.
// A Redis that accepts connections but does not answer (hung, partitioned)
// fails Run's flushes after Options.Timeout, whatever the client's own
// timeouts, and counts as down the same way.
// The first failure of an outage is logged as a warning and its end as an
// info line, never once per flush. Meanwhile every replica keeps serving
// and deciding from the last pooled numbers plus its own, so its
// statistics keep growing and a guardrail keeps judging. When Redis
// answers again, the next flush sends everything since the last
// acknowledged one, and every replica converges to the exact totals.
//
// If Redis lost its data (a restart without persistence, an eviction), the
// first flush finds no aggregate and starts a new epoch; every replica
// then resends its totals in full once (Stats.Resyncs), and the aggregate
// is rebuilt from the live replicas. Replicas that ended before the loss
// are not in it; run Redis with persistence (appendonly) to keep them.
// Stop decisions lost the same way are written again by the replicas that
// hold them. An aggregate holding data this package did not write is
// rebuilt the same way (ErrCorrupt, Stats.Corrupt, a warning).
//
// # Keys
//
// Every key starts with Options.Prefix and carries the name of its
// experiment, tracker or bandit as a Redis Cluster hash tag
// ({length:name}), so the two keys a script touches share a slot:
// PREFIX:{LEN:NAME}:tracker, ...:bandit (aggregates), ...:tracker:r:ID:INC
// (one replica process's record, expiring Options.RecordTTL after its
// last flush) and ...:stops (decisions, versioned by Redis).
package redisstate
