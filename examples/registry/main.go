// Command registry publishes a model, serves it under the production alias
// while a client sends requests, publishes a retrained version, watches
// the hot swap, and rolls back, without a single failed request.
//
//	go run ./examples/registry
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/quiverml/quiver/registry"
	"github.com/quiverml/quiver/serving"
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
	srv, err := registry.NewServer(store, registry.ONNXLoader(serving.Options{WarmUp: true}), registry.ServerOptions{
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

	// 3. Publish a retrained version 2 and move production to it.
	v2Bytes, err := retrain(v1Bytes)
	if err != nil {
		return err
	}
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

// retrain stands in for a training job: it shifts the output bias of the
// model, so version 2 answers differently with the same signature.
func retrain(model []byte) ([]byte, error) {
	var m onnx.ModelProto
	if err := proto.Unmarshal(model, &m); err != nil {
		return nil, err
	}
	g := m.GetGraph()
	out := g.GetOutput()[0].GetName()
	var bias string
	for _, n := range g.GetNode() {
		if len(n.GetOutput()) > 0 && n.GetOutput()[0] == out && len(n.GetInput()) == 3 {
			bias = n.GetInput()[2]
		}
	}
	for _, t := range g.GetInitializer() {
		if t.GetName() != bias {
			continue
		}
		if len(t.RawData) > 0 {
			for i := 0; i+4 <= len(t.RawData); i += 4 {
				f := math.Float32frombits(binary.LittleEndian.Uint32(t.RawData[i:]))
				binary.LittleEndian.PutUint32(t.RawData[i:], math.Float32bits(f+0.5))
			}
		}
		for i := range t.FloatData {
			t.FloatData[i] += 0.5
		}
		return proto.Marshal(&m)
	}
	return nil, errors.New("retrain: no output bias found in the model")
}
