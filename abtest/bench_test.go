package abtest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/onnx"
)

func benchUnits() []string {
	units := make([]string, 1024)
	for i := range units {
		units[i] = "user-" + strconv.Itoa(i*7919)
	}
	return units
}

// BenchmarkAssign measures one assignment: hashing the unit id and finding
// its variant range. The budget is 50 ns/op and 0 allocs/op.
func BenchmarkAssign(b *testing.B) {
	units := benchUnits()
	three := []Variant{{"a", 1}, {"b", 1}, {"c", 2}}
	plain, err := NewExperiment(Config{Name: "bench", Variants: three})
	require.NoError(b, err)
	full, err := NewExperiment(Config{
		Name: "bench-full", Variants: three, Coverage: 0.5,
		Overrides: map[string]string{"qa": "a"},
		Target:    Equals("country", "DE"),
	})
	require.NoError(b, err)
	layer, err := NewLayer("bench-layer", "")
	require.NoError(b, err)
	require.NoError(b, layer.Add(full, 0, 0.5))
	attrs := Attributes{"country": "DE"}
	for _, bc := range []struct {
		name string
		e    *Experiment
	}{{"plain", plain}, {"layer+target+coverage+overrides", full}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := bc.e.Assign(units[i&1023], attrs); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
	// The floor: one-shot xxhash of a key of the same length.
	keys := make([]string, len(units))
	for i, u := range units {
		keys[i] = "bench\x00" + u
	}
	b.Run("xxhash-floor", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		var sink uint64
		for b.Loop() {
			sink += xxhash.Sum64String(keys[i&1023])
			i++
		}
		_ = sink
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := plain.Assign(units[i&1023], nil); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	})
}

// BenchmarkRouter compares a direct Predict with the same Predict through a
// ModelRouter (assignment, tracker updates, latency histogram), on a fake
// model that does nothing (the router's own cost) and on the mlp.onnx test
// model (16 -> 32 -> 4, batch 1) on ONNX Runtime.
func BenchmarkRouter(b *testing.B) {
	units := benchUnits()
	exp, err := NewExperiment(Config{Name: "bench-router", Variants: []Variant{{"v1", 1}, {"v2", 1}}})
	require.NoError(b, err)
	ctx := context.Background()

	onnx1, onnx2 := loadMLP(b), loadMLP(b)
	x := make([]float32, 16)
	for i := range x {
		x[i] = float32(i) / 16
	}
	onnxIn := map[string]serving.Tensor{"x": serving.NewTensor([]int64{1, 16}, x)}

	type pair struct {
		name   string
		m1, m2 serving.Model
		in     map[string]serving.Tensor
	}
	for _, p := range []pair{
		{"fake", newFake("v1"), newFake("v2"), testInputs},
		{"onnx-mlp", onnx1, onnx2, onnxIn},
	} {
		b.Run(p.name+"/direct", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.m1.Predict(ctx, p.in); err != nil {
					b.Fatal(err)
				}
			}
		})
		r, err := NewRouter(exp, map[string]serving.Model{"v1": p.m1, "v2": p.m2}, RouterOptions{})
		require.NoError(b, err)
		b.Run(p.name+"/router", func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := r.Predict(ctx, Request{Unit: units[i&1023], Inputs: p.in}); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		require.NoError(b, r.Close())
	}
	// The two monotonic clock reads the router takes per request to
	// measure latency: most of its overhead on this virtual machine.
	b.Run("clock-pair", func(b *testing.B) {
		var sink time.Duration
		for b.Loop() {
			s := monotonic()
			sink += monotonic() - s
		}
		_ = sink
	})
	// Shadow enqueue cost on the primary path: a full queue drops copies.
	blocked := newFake("shadow")
	blocked.block = make(chan struct{})
	r, err := NewRouter(exp, map[string]serving.Model{"v1": newFake("v1"), "v2": newFake("v2")},
		RouterOptions{Shadows: map[string]serving.Model{"s": blocked}, ShadowQueue: 1, ShadowWorkers: 1})
	require.NoError(b, err)
	b.Run("fake/router+shadow", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := r.Predict(ctx, Request{Unit: units[i&1023], Inputs: testInputs}); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	close(blocked.block)
	require.NoError(b, r.Close())
}

func loadMLP(tb testing.TB) serving.Model {
	tb.Helper()
	m, err := onnx.Load(context.Background(), "../testdata/models/mlp.onnx", onnx.Options{})
	require.NoError(tb, err, "ONNX Runtime is needed: run `make ort` or set ONNXRUNTIME_LIB")
	tb.Cleanup(func() { _ = m.Close() })
	return m
}
