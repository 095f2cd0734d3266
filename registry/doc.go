// Package registry keeps versioned models on disk and serves them by alias
// with safe hot reload.
//
// A Store is a directory tree laid out like TF Serving's and Triton's model
// repositories, <root>/<model>/<version>/, where each version holds its
// artifact files and a manifest.json: format, xxhash64 of every file,
// creation time, signature, metrics, free tags and lineage. Versions are
// published atomically (staged, fsynced, renamed), and aliases
// (production, staging, canary) move between them with one-step rollback.
// Every change is appended to an audit log that survives restarts.
//
// A Server watches a Registry (a Store, or any other implementation) by
// polling, turns versions into live serving.Model values through a Loader,
// and swaps an alias to its new version only once that version has passed
// its checksum, loaded and warmed up. Requests in flight finish on the old
// version, which is closed when its last request returns. A Handle is the
// serving.Model that follows an alias: put it behind a router or a
// batcher like any other model.
//
//	store, err := registry.Open("/var/lib/models", registry.Options{})
//	if err != nil { ... }
//	ctx = registry.WithActor(ctx, "ci@build-1234")
//	v, err := store.Publish(ctx, "ranker", []registry.File{{Name: "model.onnx", Path: "ranker.onnx"}},
//		registry.Meta{Lineage: registry.Lineage{CodeVersion: "3f2a9c1"}})
//	if err != nil { ... }
//	err = store.SetAlias(ctx, "ranker", "production", v.Number)
//
//	srv, err := registry.NewServer(store, registry.FileLoader("onnx", onnx.Opener(onnx.Options{})), registry.ServerOptions{})
//	if err != nil { ... }
//	defer srv.Close()
//	_ = srv.Start(ctx)
//	prod, err := srv.Model("ranker", "production") // a serving.Model
//	out, served, err := prod.PredictVersion(ctx, inputs)
//	// served.Version says which version answered.
//
//	_, err = store.Rollback(ctx, "ranker", "production") // no load while the old version is loaded
//	srv.Poke()                                           // apply now, not at the next poll
//
// Each version records its signature: its inputs and outputs with element
// types and shapes. Publish reads it from an ONNX entry (SignatureFromONNX)
// when the caller gives none, and refuses one that disagrees with the file
// (ErrSignature). An alias moves (SetAlias, Rollback) only to a version whose
// signature keeps the alias's callers working (CheckCompatible: the same
// inputs, accepting at least what they accepted; the same outputs, at least
// as precisely shaped); otherwise the move fails with ErrIncompatible and the
// alias stays where it was, unless MoveOptions.Force is set.
//
// Metrics and logs follow the rules of package quiver. Server.Collector
// exports these series, each labelled with registry=ServerOptions.Name:
//
//   - quiver_registry_polls_total, quiver_registry_poll_errors_total: counters
//   - quiver_registry_loads_total, quiver_registry_load_failures_total: counters
//   - quiver_registry_swaps_total, quiver_registry_unloads_total, quiver_registry_closed_total: counters
//   - quiver_registry_not_serving_total, quiver_registry_events_dropped_total: counters
//   - quiver_registry_load_seconds: histogram of the time a version took to load
//   - quiver_registry_loaded_versions: gauge
//   - quiver_registry_version_in_flight: gauge; model, version
//   - quiver_registry_serving_version: gauge; model, alias
//
// A nil ServerOptions.Logger means slog.Default(): a version that fails to
// load is logged at error level with its model, version and error, and
// every swap at info level with its model, alias and version.
package registry
