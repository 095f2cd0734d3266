package registry_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/quiverml/quiver/registry"
	"github.com/quiverml/quiver/serving"
)

// constModel answers with a constant, standing in for an ONNX model.
type constModel float32

func (c constModel) Info() serving.Info { return serving.Info{} }
func (c constModel) Predict(context.Context, map[string]serving.Tensor) (map[string]serving.Value, error) {
	return map[string]serving.Value{"y": serving.TensorValue(serving.NewTensor([]int64{1}, []float32{float32(c)}))}, nil
}
func (c constModel) Close() error { return nil }

// loadConst reads the constant from the version's entry file; a real
// service uses registry.FileLoader with serving/onnx.Opener.
func loadConst(_ context.Context, v registry.Version, dir string) (serving.Model, error) {
	data, err := os.ReadFile(filepath.Join(dir, v.Entry))
	if err != nil {
		return nil, err
	}
	var f float32
	if _, err := fmt.Sscan(string(data), &f); err != nil {
		return nil, err
	}
	return constModel(f), nil
}

func Example() {
	ctx := registry.WithActor(context.Background(), "example")
	root, _ := os.MkdirTemp("", "registry-example")
	defer os.RemoveAll(root)

	store, err := registry.Open(root, registry.Options{})
	if err != nil {
		panic(err)
	}
	v1, _ := store.Publish(ctx, "ranker", []registry.File{{Name: "model.txt", Data: []byte("0.25")}},
		registry.Meta{Format: "const", Lineage: registry.Lineage{CodeVersion: "abc123"}})
	_ = store.SetAlias(ctx, "ranker", "production", v1.Number)

	srv, err := registry.NewServer(store, loadConst, registry.ServerOptions{PollInterval: time.Hour})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	_ = srv.Start(ctx)
	prod, _ := srv.Model("ranker", "production") // a serving.Model

	v2, _ := store.Publish(ctx, "ranker", []registry.File{{Name: "model.txt", Data: []byte("0.75")}},
		registry.Meta{Format: "const", Lineage: registry.Lineage{Parent: v1.Number}})
	_ = store.SetAlias(ctx, "ranker", "production", v2.Number)
	_ = srv.Sync(ctx) // or wait for the next poll

	out, served, _ := prod.PredictVersion(ctx, nil)
	fmt.Println("version", served.Version, "answers", out["y"].Tensor.Data)

	_, _ = store.Rollback(ctx, "ranker", "production")
	_ = srv.Sync(ctx)
	out, served, _ = prod.PredictVersion(ctx, nil)
	fmt.Println("version", served.Version, "answers", out["y"].Tensor.Data)

	log, _ := store.Audit(ctx)
	for _, e := range log {
		fmt.Println(e.Actor, e.Action, e.Model, e.Alias, e.Old, "->", e.New)
	}
	// Output:
	// version 2 answers [0.75]
	// version 1 answers [0.25]
	// example publish ranker   -> 1
	// example set_alias ranker production  -> 1
	// example publish ranker   -> 2
	// example set_alias ranker production 1 -> 2
	// example rollback ranker production 2 -> 1
}

func ExampleWithServedHook() {
	ctx := context.Background()
	root, _ := os.MkdirTemp("", "registry-example")
	defer os.RemoveAll(root)
	store, _ := registry.Open(root, registry.Options{})
	_, _ = store.Publish(ctx, "ranker", []registry.File{{Name: "m", Data: []byte("1")}}, registry.Meta{Format: "const"})
	srv, _ := registry.NewServer(store, loadConst, registry.ServerOptions{})
	defer srv.Close()
	_ = srv.Sync(ctx)
	latest, _ := srv.Model("ranker", registry.Latest)

	// A router holds latest as a plain serving.Model; the hook still
	// learns which version answered.
	var m serving.Model = latest
	hctx := registry.WithServedHook(ctx, func(s registry.Served) {
		fmt.Printf("%s@%s answered with version %d\n", s.Model, s.Alias, s.Version)
	})
	_, _ = m.Predict(hctx, nil)
	// Output: ranker@latest answered with version 1
}

func ExampleValidName() {
	for _, name := range []string{"ranker-v2", "../etc", "a/b", ".hidden", "caf\u00e9"} {
		fmt.Println(name, registry.ValidName(name) == nil)
	}
	// Output:
	// ranker-v2 true
	// ../etc false
	// a/b false
	// .hidden false
	// café false
}
