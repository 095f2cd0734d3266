// Package s3 keeps a model registry, and vector index snapshots, in an
// S3-compatible object store, so that many replicas of a service share one
// model repository: any of them (or a CI job) publishes and moves aliases,
// every registry.Server follows.
//
// A Store has the operations of registry.Store with the same semantics,
// errors and JSON formats (manifests, alias tables, audit records), and
// implements registry.Registry, so a registry.Server serves from it
// unchanged. Fetch keeps a verified local copy of each version it loads.
//
//	import regs3 "github.com/quiverml/quiver/registry/s3"
//
//	store, err := regs3.Open(ctx, regs3.Options{
//		Endpoint: "minio.internal:9000", Bucket: "ml", Prefix: "models",
//		AccessKey: key, SecretKey: secret, Secure: true,
//		CacheDir: "/var/cache/quiver",
//	})
//	if err != nil { ... }
//	defer store.Close()
//	v, err := store.Publish(ctx, "ranker", []registry.File{{Name: "model.onnx", Path: "ranker.onnx"}}, registry.Meta{})
//	err = store.SetAlias(ctx, "ranker", "production", v.Number)
//
//	srv, err := registry.NewServer(store, registry.FileLoader("onnx", onnx.Opener(onnx.Options{})),
//		registry.ServerOptions{PollInterval: 2 * time.Second})
//	_ = srv.Start(ctx)
//	prod, err := srv.Model("ranker", "production")
//
// # Layout
//
// Under Options.Prefix, a model's objects are named as registry.Store names
// its files, so a copy of the bucket opens as a folder registry:
//
//	<model>/<n>/manifest.json     the manifest: the version exists iff it does
//	<model>/<n>/<file>            the artifacts
//	<model>/aliases.json          the alias table
//	<model>/.claims/<n>           the claim on number n
//	<model>/.changed              the model's change marker
//	.models                       the models' change marker
//	.audit/<unix nanos>-<random>.json   one audit record per object
//	.snapshots/<name>/...         snapshots (see below)
//
// # Guarantees
//
// They rest on the object store's strong read-after-write consistency and on
// its conditional writes: PutObject with If-None-Match: * (create only) and
// If-Match: <etag> (replace only that version). AWS S3, MinIO and the Versity
// gateway provide both; CheckConditionalWrites checks a server.
//
//   - Atomic publish. Publish uploads the artifacts first and creates the
//     manifest last, with If-None-Match: *; the manifest is the commit point.
//     A reader never sees half a version; a publish that fails or is
//     cancelled before the commit removes what it uploaded.
//   - Distinct numbers. Before uploading, a publisher claims its number by
//     creating <model>/.claims/<n> with If-None-Match: *; a lost race moves
//     to the next number (or fails with registry.ErrExists for an explicit
//     Meta.Number). Two publishers, in any processes, never share a number
//     or overwrite each other's files, and no version is lost.
//   - Alias moves are compare-and-swap. SetAlias, Rollback and DeleteAlias
//     write the alias table with If-Match on the ETag they read (or
//     If-None-Match: * when there was none) and redo the change, checks
//     included, when another writer got there first. Tag, Untag, Archive and
//     Unarchive rewrite a manifest the same way. Concurrent moves of any
//     aliases by any Stores all land.
//   - No alias on a removed version. Delete and Archive refuse an aliased
//     version; SetAlias and Rollback refuse a missing or archived one. When
//     one of each races on the same version in two Stores, each writes its
//     own object first and reads the other's second, so at least one sees
//     the conflict and undoes its write (the error says so). A writer that
//     dies between its write and the undo can leave the alias on a removed
//     version; a Server then keeps serving the version it has.
//   - Audit. Every change is recorded after it is made, as its own object,
//     so writers never contend on a shared log; keys sort by time by the
//     writer's clock. Audit and AuditSince read them back.
//
// # Consistency bounds
//
// A Scan that starts after SetAlias, Rollback or DeleteAlias returned sees
// the move: every Scan reads the alias table (a conditional GET). A Scan that
// starts after Publish, Delete, Tag or Archive returned sees the change: the
// writer moves the model's change marker after it, and a Scan whose HEAD of
// the marker shows a new ETag lists the model again. If a writer dies between
// its change and the marker, readers see the change within
// Options.RelistInterval (default 30 s), when their cached listing expires.
//
// A registry.Server therefore serves an alias move made by any replica
// within ServerOptions.PollInterval plus the time to fetch (nothing when
// the version is cached), load and warm the version; a rollback to the
// version the Server kept loaded swaps at its next poll. Cross-replica
// swaps are not simultaneous: during that window replicas may serve
// different versions, each answering with the version it served.
//
// A Scan of an unchanged model costs two small requests (the HEAD of its
// marker, a GET answered 304), whatever the number of versions; Models
// costs one HEAD. N replicas polling every P seconds send about
// N(2·models+1)/P such requests per second.
//
// # Local cache and outages
//
// Fetch downloads a version into <CacheDir>/<model>/<n>/ (a temporary
// directory, every file's size and xxhash64 checked against the manifest,
// fsynced, renamed into place) next to a copy of its manifest, and reuses it:
// a cache entry is hashed in full on its first use by a process and
// whenever a file's size, modification time or inode changed; one that
// fails is downloaded again. A corrupted object fails with
// registry.ErrChecksum and never enters the cache. Publish moves its staged
// copy into the cache, so the publisher does not download what it uploaded.
// The cache is not pruned: versions deleted from the store stay until
// removed by hand.
//
// When the object store cannot be reached (or answers 5xx) after
// Options.Retries tries, writes fail with ErrUnavailable and leave nothing a
// retry would not redo. Reads answer from what the Store has: Scan and
// Models return the last state read, or, in a process that has read none,
// the versions in the cache folder with the alias table last seen; Get and
// Fetch serve cached versions. A Server thus keeps serving, and a replica
// restarted during the outage on the same CacheDir serves what it served
// before. Everything resumes when the store answers again; Stats.Offline
// and the quiver_registry_s3_offline gauge show the state, and the
// transitions are logged.
//
// # Running N replicas
//
// Give every replica the same Endpoint, Bucket and Prefix and its own
// CacheDir (a persistent volume if it should start during an outage), open a
// Store and run a registry.Server over it. Publish from CI or from any
// replica; move aliases from anywhere. Writers need no coordination
// beyond the object store's conditional writes.
//
// # Vector index snapshots
//
// PutSnapshotFile (or PutSnapshot, from a reader) stores a file, such as a
// vector index written by vector.HNSW.Save, as the next numbered snapshot of
// a series: the bytes go to .snapshots/<name>/data/<random id>, then the
// record <name>/<n>.json (size, xxhash64, time) is created with
// If-None-Match: *, which commits snapshot n (a lost race takes n+1 without
// uploading again), then <name>/latest.json moves forward to it with a
// compare-and-swap, never back. GetSnapshot downloads the latest into a
// path atomically, after checking its size and hash, so a new replica starts
// from the newest index with vector.LoadHNSW. PruneSnapshots keeps the
// newest few.
//
// # Metrics and logs
//
// Store.Stats returns the counters; Store.Collector exports them with the
// quiver_registry_s3_ prefix, labelled with store=Options.Name:
// requests_total, request_errors_total, unavailable_total, lists_total,
// not_modified_total, conflicts_total, scans_total, cached_scans_total,
// offline_scans_total, offline_fetches_total, fetches_total,
// cache_hits_total, downloads_total, corrupt_cache_total,
// checksum_failures_total, downloaded_bytes_total, uploaded_bytes_total
// (counters) and offline (gauge). Logs go to Options.Logger (nil means
// slog.Default()): changes at info level, outages and leftovers at warning
// level, failed audit records at error level.
package s3
