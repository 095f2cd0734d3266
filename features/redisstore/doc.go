// Package redisstore adds Redis to a features.Memory store: a shared tier
// that many replicas read and write, and a Redis Streams source for
// streaming ingestion.
//
// Tier is a features.Store. Writes go through to Redis (one pipelined
// round trip per Put, a server-side script keeping the newest event per
// entity, the view's TTL mapped to the key's expiry) and into the local
// store; reads are served by the local store and, for entities it does not
// hold, read through from Redis with one pipeline of GETs and cached
// locally. A local copy is served for at most Options.MaxStaleness (one
// second by default) after this replica last wrote or read it through
// Redis; after that the next read asks Redis again, so a write through one
// replica is visible through every other within MaxStaleness. A row Redis
// no longer holds is then dropped from the local store too.
//
// After a failed Redis call a circuit breaker fails the calls that need
// Redis at once with ErrUnavailable (which wraps ErrRedis) for
// Options.BreakerBackoff; then one call probes Redis and, when it answers,
// the tier works as before. Rows the local store holds and are fresh keep
// being served meanwhile. Tier.Stats counts the traffic with Redis (reads
// found and not found, writes, failures, refused calls, the breaker's
// state) and Tier.Collector exports it as quiver_features_redis_*; register
// it beside Local().Collector.
//
// Keys are Prefix:len(view):view:vVersion:entity (the view name's length
// in decimal, then the name), which no other view and entity pair can
// spell. Releases before this layout wrote Prefix:view:vVersion:entity,
// where view "a:v0:b" with entity "x" and view "a" with entity "b:v0:x"
// shared a key. Those keys are not read: after an upgrade, entities read
// through Redis are missing until they are written again (by the stream or
// a backfill) and the old keys expire with the view's TTL; with a TTL of
// zero, delete them once every replica runs the new layout (SCAN for
// Prefix:view:v*, skipping keys whose next part is the name's length).
//
//	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
//	tier := redisstore.New(features.New(features.Options{}), rdb, redisstore.Options{})
//	_ = tier.Register(view)
//	_ = tier.Put(ctx, "user", row)                      // local + Redis
//	_ = tier.GetMany(ctx, sel, ids, dst, status)        // local, misses from Redis
//
// StreamSource consumes a Redis stream with a consumer group: it re-reads
// its own unacknowledged entries after a restart, writes rows in batches
// and acknowledges them only once they are stored.
//
//	src := redisstore.NewStreamSource(rdb, redisstore.StreamOptions{Stream: "user-events", Group: "feature-store", Consumer: host})
//	stats, err := src.Run(ctx, tier, view)
//
// Logs follow the rules of package quiver: a nil Options.Logger or
// StreamOptions.Logger means slog.Default(). A Redis read that fails, after
// which a read serves only what the local store holds, is logged at warn
// level; stream ingestion that stops on an error at error level.
package redisstore
