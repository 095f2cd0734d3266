package s3_test

import (
	"context"
	"log"
	"time"

	"github.com/quiverml/quiver/registry"
	regs3 "github.com/quiverml/quiver/registry/s3"
	"github.com/quiverml/quiver/vector"
)

// A replica serves the models of a shared bucket and follows alias moves
// made by any other replica or by CI.
func Example() {
	ctx := context.Background()
	store, err := regs3.Open(ctx, regs3.Options{
		Endpoint: "minio.internal:9000", Bucket: "ml", Prefix: "models",
		AccessKey: "...", SecretKey: "...", Secure: true,
		CacheDir: "/var/cache/quiver/models",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	// In CI: publish and promote.
	ctx = registry.WithActor(ctx, "ci@build-1234")
	v, err := store.Publish(ctx, "ranker", []registry.File{{Name: "model.onnx", Path: "out/ranker.onnx"}}, registry.Meta{})
	if err != nil {
		log.Fatal(err)
	}
	if err := store.SetAlias(ctx, "ranker", "production", v.Number); err != nil {
		log.Fatal(err)
	}

	// In every replica: serve by alias; a load function turns a fetched
	// version into a model (registry.FileLoader with serving/onnx's Opener
	// for ONNX Runtime).
	var load registry.Loader
	srv, err := registry.NewServer(store, load, registry.ServerOptions{PollInterval: 2 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	_ = srv.Start(ctx)
	prod, err := srv.Model("ranker", "production")
	if err != nil {
		log.Fatal(err)
	}
	_ = prod // a serving.Model
}

// One replica stores its vector index; a new replica starts from the
// latest one.
func ExampleStore_GetSnapshot() {
	ctx := context.Background()
	store, err := regs3.Open(ctx, regs3.Options{Endpoint: "minio.internal:9000", Bucket: "ml", Prefix: "indexes"})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	idx, err := vector.NewHNSW[string](vector.Options{Dim: 384, Metric: vector.Cosine})
	if err != nil {
		log.Fatal(err)
	}
	// ... idx.Add(...)
	if err := idx.Save(ctx, "/tmp/docs.qvix"); err != nil {
		log.Fatal(err)
	}
	if _, err := store.PutSnapshotFile(ctx, "docs", "/tmp/docs.qvix"); err != nil {
		log.Fatal(err)
	}

	// On the new replica:
	info, err := store.GetSnapshot(ctx, "docs", "/var/lib/app/docs.qvix")
	if err != nil {
		log.Fatal(err)
	}
	restored, err := vector.LoadHNSW[string](ctx, "/var/lib/app/docs.qvix", vector.Options{})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("snapshot %d: %d items", info.Number, restored.Len())
}
