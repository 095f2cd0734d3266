// Command registry publishes a model, serves it under the production alias
// while a client sends requests, publishes a smaller version of it (int8
// weights, made with quant.QuantizeModel), watches the hot swap, and rolls
// back, without a single failed request.
//
//	go run ./examples/registry
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quiverml/quiver/quant"
	"github.com/quiverml/quiver/registry"
	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/onnx"
)

func main() {
	model := flag.String("model", "testdata/models/mlp.onnx", "ONNX model x[batch,16] -> y[batch,4] to publish as version 1")
	root := flag.String("root", "", "registry root (default: a temporary directory)")
	verbose := flag.Bool("v", false, "log the registry's own messages")
	flag.Parse()
	if err := run(*model, *root, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "registry example:", err)
		os.Exit(1)
	}
}

func run(modelPath, root string, verbose bool) error {
	ctx := registry.WithActor(context.Background(), "example")
	if root == "" {
		dir, err := os.MkdirTemp("", "quiver-registry-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		root = dir
	}
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	store, err := registry.Open(root, registry.Options{Logger: logger})
	if err != nil {
		return err
	}
	v1Bytes, err := os.ReadFile(modelPath)
	if err != nil {
		return fmt.Errorf("%w (run from the repository root, or pass -model)", err)
	}
	sig := registry.Signature{
		Inputs:  []registry.TensorSpec{{Name: "x", ElementType: "float32", Shape: []int64{-1, 16}}},
		Outputs: []registry.TensorSpec{{Name: "y", ElementType: "float32", Shape: []int64{-1, 4}}},
	}

	// 1. Publish version 1 and make it production.
	v1, err := store.Publish(ctx, "ranker", []registry.File{{Name: "model.onnx", Data: v1Bytes}}, registry.Meta{
		Signature: sig, Metrics: map[string]float64{"auc": 0.81},
		Lineage: registry.Lineage{DataVersion: "clicks-2026-11-01", CodeVersion: "a1b2c3d"},
	})
	if err != nil {
		return err
	}
	if err := store.SetAlias(ctx, "ranker", "production", v1.Number); err != nil {
		return err
	}
	fmt.Printf("published ranker v%d (%s, xxhash64 %s), production -> v%d\n",
		v1.Number, v1.Entry, v1.Files[0].XXHash64, v1.Number)

	// 2. Serve it.
	srv, err := registry.NewServer(store, registry.FileLoader("onnx", onnx.Opener(onnx.Options{WarmUp: true})), registry.ServerOptions{
		PollInterval: 50 * time.Millisecond, Logger: logger,
		Aliases: []string{"production"}, Policy: registry.Policy{Latest: -1}, // serve production only
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	start := time.Now()
	if err := srv.Start(ctx); err != nil {
		return err
	}
	fmt.Printf("serving production v%d after %v\n", v1.Number, time.Since(start).Round(time.Millisecond))
	for len(srv.Events()) > 0 { // the first load's events
		<-srv.Events()
	}
	prod, err := srv.Model("ranker", "production")
	if err != nil {
		return err
	}

	// A client predicting all along, counting answers per version.
	var mu sync.Mutex
	answers := map[int64]int{}
	var failed atomic.Int64
	firstErr := make(chan error, 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			x := make([]float32, 16)
			for {
				select {
				case <-stop:
					return
				default:
				}
				for i := range x {
					x[i] = rng.Float32()
				}
				_, served, err := prod.PredictVersion(ctx, map[string]serving.Tensor{"x": serving.NewTensor([]int64{1, 16}, x)})
				if err != nil {
					failed.Add(1)
					select {
					case firstErr <- err:
					default:
					}
					continue
				}
				mu.Lock()
				answers[served.Version]++
				mu.Unlock()
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)

	// 3. Publish version 2, the same model with int8 weights, and move
	// production to it.
	v2Bytes, rep, err := quant.QuantizeModel(ctx, v1Bytes, quant.ModelOptions{})
	if err != nil {
		return err
	}
	fmt.Printf("quantized the weights to int8: %d -> %d bytes, %d weights\n", rep.BytesBefore, rep.BytesAfter, len(rep.Weights))
	v2, err := store.Publish(ctx, "ranker", []registry.File{{Name: "model.onnx", Data: v2Bytes}}, registry.Meta{
		Signature: sig, Metrics: map[string]float64{"auc": 0.84},
		Lineage: registry.Lineage{DataVersion: "clicks-2026-11-20", CodeVersion: "a1b2c3d", Parent: v1.Number},
	})
	if err != nil {
		return err
	}
	moved := time.Now()
	if err := store.SetAlias(ctx, "ranker", "production", v2.Number); err != nil {
		return err
	}
	fmt.Printf("published ranker v%d (parent v%d), production -> v%d\n", v2.Number, v2.Lineage.Parent, v2.Number)
	loads, err := waitSwap(srv, v2.Number)
	if err != nil {
		return err
	}
	fmt.Printf("swapped to v%d %v after the alias moved (poll, checksum, load and warm-up; versions loaded: %d)\n",
		v2.Number, time.Since(moved).Round(time.Millisecond), loads)
	time.Sleep(200 * time.Millisecond)

	// 4. Roll back: version 1 is still loaded, so the swap needs no load.
	moved = time.Now()
	to, err := store.Rollback(ctx, "ranker", "production")
	if err != nil {
		return err
	}
	loads, err = waitSwap(srv, to)
	if err != nil {
		return err
	}
	fmt.Printf("rolled back to v%d %v after the alias moved (next poll; versions loaded: %d)\n", to, time.Since(moved).Round(time.Millisecond), loads)
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()

	mu.Lock()
	fmt.Printf("requests answered: v1 %d, v2 %d; failed: %d\n", answers[1], answers[2], failed.Load())
	mu.Unlock()
	st := srv.Stats()
	fmt.Printf("server: %d loads, %d swaps, %d load failures\n", st.Loads, st.Swaps, st.LoadFailures)

	log, err := store.Audit(ctx)
	if err != nil {
		return err
	}
	fmt.Println("audit log:")
	for _, e := range log {
		fmt.Printf("  %s %-9s %s %-10s %1s -> %s by %s\n", e.Time.Format(time.TimeOnly), e.Action, e.Model, e.Alias, e.Old, e.New, e.Actor)
	}
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d requests failed, first: %w", n, <-firstErr)
	}
	return nil
}

// waitSwap waits for production to serve version n and says how many
// versions were loaded on the way.
func waitSwap(srv *registry.Server, n int64) (loads int, err error) {
	deadline := time.After(30 * time.Second)
	for {
		select {
		case e, ok := <-srv.Events():
			if !ok {
				return loads, errors.New("server closed")
			}
			switch {
			case e.Kind == registry.EventLoaded:
				loads++
			case e.Kind == registry.EventSwapped && e.Alias == "production" && e.Version == n:
				return loads, nil
			case e.Kind == registry.EventLoadFailed:
				return loads, e.Err
			}
		case <-deadline:
			return loads, fmt.Errorf("production did not swap to v%d", n)
		}
	}
}
