// Package vector is an in-process vector index for semantic search and
// retrieval-augmented generation: an HNSW graph index (Malkov and Yashunin)
// and an exact Flat index behind one Index interface, with L2, cosine and
// inner-product distances, string or uint64 ids, metadata filters,
// deletes that give memory back, and checksummed persistence.
//
// The HNSW index stores vectors in one contiguous slab and links in flat
// uint32 arrays, selects neighbours with the paper's heuristic, runs an
// ef-bounded beam search with a reusable visited set, and computes
// distances with AVX2+FMA kernels (pure Go elsewhere). A search allocates
// only its result slice. Searches run in parallel with Add, Upsert and
// Delete, and a large Add inserts on every core.
//
//	idx, err := vector.NewHNSW[string](vector.Options{Dim: 384, Metric: vector.Cosine})
//	err = idx.Add(ctx,
//		vector.Item[string]{ID: "a", Vector: va, Metadata: vector.Metadata{"lang": "en", "year": 2024}},
//		vector.Item[string]{ID: "b", Vector: vb, Metadata: vector.Metadata{"lang": "fr", "year": 2021}},
//	)
//	hits, err := idx.Search(ctx, query, 10, vector.SearchOptions{
//		Ef:     64,
//		Filter: vector.And(vector.Eq("lang", "en"), vector.Range("year", 2022, math.Inf(1))),
//	})
//	err = idx.Save(ctx, "docs.qvix")
//	idx2, err := vector.LoadHNSW[string](ctx, "docs.qvix", vector.Options{})
//
// Metadata values keep their Go types (string, bool, and every integer and
// float type) in the index and through Save and Load; filters compare
// numbers by value across types.
//
// Filtered searches walk the graph and skip non-matching items; when a
// filter matches under Options.ExactFilterBelow of the items (estimated
// from a sample), or the walk finds fewer than k matches, the matching
// items are scanned exactly, so a selective filter still returns k results.
//
// SearchBatch (a method of HNSW and Flat, and a function over any Index)
// searches many queries at once on every core and returns, per query,
// exactly what Search returns. Options.Progress follows long Adds and
// loads, for a progress bar or a log line.
//
// Options.Quantization = QuantInt8Only keeps int8 codes (a byte per
// dimension and a scale) instead of float vectors in memory: the graph is
// built with asymmetric distances (the float vector inserted against the
// stored codes) and searched on the codes. Set Options.VectorsFile to keep
// the full-precision vectors in a memory-mapped file on disk, used to
// re-score the best candidates and by Get; without it results are ranked
// on the codes and Get returns dequantized codes. Stats.Parts splits the
// memory by what holds it.
//
//	idx, err := vector.NewHNSW[string](vector.Options{Dim: 384, Metric: vector.Cosine,
//		Quantization: vector.QuantInt8Only, VectorsFile: "docs.vectors"})
//
// Deleted items are tombstoned at once and reclaimed by Compact, which
// repairs the links around them and hands their slots to new inserts; it
// runs automatically once tombstones pass Options.CompactRatio.
//
// Metrics and logs follow the rules of package quiver. HNSW.Collector and
// Flat.Collector export the index's Stats, each series labelled with
// index=Options.Name:
//
//   - quiver_vector_items, quiver_vector_tombstones, quiver_vector_slots: gauges
//   - quiver_vector_memory_bytes: gauge
//   - quiver_vector_memory_part_bytes{part}: gauge, memory_bytes by part
//     (vectors, codes, links, keys, metadata)
//   - quiver_vector_mapped_bytes: gauge, the VectorsFile mapping
//   - quiver_vector_searches_total, quiver_vector_exact_scans_total: counters
//   - quiver_vector_inserts_total, quiver_vector_deletes_total: counters
//   - quiver_vector_compactions_total, quiver_vector_reclaimed_slots_total: counters
//
// A nil Options.Logger means slog.Default(); messages carry the index's
// name under "index".
//
// Package vector/rag adds chunking, embedders and a document store on top;
// package vector/coderimport imports graphs saved by github.com/coder/hnsw.
package vector
