// Package redisstore adds Redis to a features.Memory store: a shared tier
// that many replicas read and write, and a Redis Streams source for
// streaming ingestion.
//
// Tier is a features.Store. Writes go through to Redis (one pipelined
// round trip per Put, a server-side script keeping the newest event per
// entity, the view's TTL mapped to the key's expiry) and into the local
// store; reads are served by the local store and, for entities it does not
// hold, read through from Redis with one pipeline of GETs and cached
// locally.
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
