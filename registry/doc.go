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
//	srv, err := registry.NewServer(store, registry.ONNXLoader(serving.Options{}), registry.ServerOptions{})
//	if err != nil { ... }
//	defer srv.Close()
//	_ = srv.Start(ctx)
//	prod, err := srv.Model("ranker", "production") // a serving.Model
//	out, served, err := prod.PredictVersion(ctx, inputs)
//	// served.Version says which version answered.
//
//	_, err = store.Rollback(ctx, "ranker", "production") // no load while the old version is loaded
//	srv.Poke()                                           // apply now, not at the next poll
package registry
