// Package features is an in-process online feature store: what Feast's
// online store on Redis does, inside the Go service that serves the model.
//
// A View is a named, typed schema (float32, int64, string and fixed-length
// embedding features, with defaults) keyed by one entity, with a TTL and a
// version. Rows are written with an event time (the newest event wins; a
// row without one takes the time of the write; one beyond 1678..2262 is
// ErrEventTime) and
// read back as dense row-major float32 matrices ready for a model, with a
// per-value Status as in Feast (PRESENT, NULL_VALUE, NOT_FOUND,
// OUTSIDE_MAX_AGE). The TTL is enforced on read; missing, null and expired
// values get the feature's default and are counted.
//
// Memory keeps each view in shards of flat arrays: an open-addressing index,
// 32-byte key slots and a float32 slab. Reads take no lock (per-shard
// sequence locks) and allocate nothing when the caller passes buffers;
// capacity is bounded with CLOCK eviction, and expired rows are reclaimed
// by eviction, Sweep or the optional sweeper. The store also keeps per-view
// freshness histograms and counters (Stats, Collector), per-feature
// running statistics with a quantile Sketch, and drift reports (PSI,
// Kolmogorov-Smirnov, Jensen-Shannon) against a reference window. Save and
// Load snapshot a store to a checksummed, versioned file (whatever Put and
// Register accept, a snapshot holds; Load removes the temporary files of
// interrupted saves); Ingest feeds rows
// from a channel or an iterator in batches. Package features/redisstore
// adds a Redis tier shared by replicas and a Redis Streams source.
//
// Usage:
//
//	store := features.New(features.Options{})
//	defer store.Close()
//	err := store.Register(features.View{
//		Name: "user", Entity: "user_id", TTL: time.Hour,
//		Features: []features.Feature{
//			{Name: "age", Kind: features.KindFloat32, Default: features.Float32(-1)},
//			{Name: "emb", Kind: features.KindEmbedding, Dim: 8},
//		},
//	})
//	err = store.Put(ctx, "user", features.Row{Entity: "u42", EventTime: time.Now(),
//		Values: map[string]features.Value{"age": features.Float32(31), "emb": features.Embedding(vec)}})
//	sel, err := store.Select("user", "age", "emb") // compile once
//	dst := make([]float32, len(ids)*sel.Width())    // model input, row-major
//	status := make([]features.Status, len(ids)*sel.Len())
//	err = store.GetMany(ctx, sel, ids, dst, status)
//
// Metrics and logs follow the rules of package quiver. Collector exports
// these series per view, each labelled with store=Options.Name:
//
//   - quiver_features_reads_total: counter; view, result (found, not_found, outside_max_age)
//   - quiver_features_null_values_total: counter; view
//   - quiver_features_writes_total: counter; view, result (stored, stale, rejected)
//   - quiver_features_evictions_total: counter; view, reason (capacity, ttl)
//   - quiver_features_rows, quiver_features_capacity_rows: gauges; view
//   - quiver_features_served_age_seconds: histogram; view
//
// A nil Options.Logger or IngestOptions.Logger means slog.Default();
// messages carry the store's name under "store".
package features
