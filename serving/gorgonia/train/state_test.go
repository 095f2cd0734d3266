package train_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/internal/checkfile"
	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/gorgonia/train"
)

// A trainer saved and loaded resumes exactly: the loaded trainer has the
// same spec, options, step and predictions, and the next steps taken by the
// original and the loaded trainer give bit-identical models, for every
// solver (whose state, Adam's moments and the momentum buffer, is saved
// too) and every kind of model.
func TestSaveLoadResumes(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		spec train.Spec
		data *dataset
	}{
		{"logistic", train.LogisticRegression{Features: 2}, circles(256, 1)},
		{"mlp", train.MLP{Sizes: []int{2, 8, 8, 1}, Activation: train.Tanh}, circles(256, 1)},
		{"multiclass", train.MLP{Sizes: []int{2, 6, 3}, Output: train.Multiclass}, blobs(256, 3, 1)},
		{"regression", train.MLP{Sizes: []int{2, 6, 2}, Output: train.Regression}, waves(256, 1)},
		{"two-tower", train.TwoTower{User: []int{8, 6, 4}, Item: []int{6, 4}}, affinity(256, 1)},
	} {
		for _, solver := range []train.Solver{train.Adam, train.SGD, train.Momentum} {
			t.Run(tc.name+"/"+solver.String(), func(t *testing.T) {
				opts := train.Options{Solver: solver, L2: 1e-3, ClipNorm: 5, Seed: 9}
				a := newTrainer(t, tc.spec, opts)
				fit(t, a, tc.data, 1, 32)
				var buf bytes.Buffer
				require.NoError(t, a.Save(ctx, &buf))
				b, err := train.Load(bytes.NewReader(buf.Bytes()), train.LoadOptions{})
				require.NoError(t, err)
				defer b.Close()
				require.Equal(t, a.Spec(), b.Spec())
				require.Equal(t, a.Options(), b.Options())
				require.Equal(t, a.Info(), b.Info())
				require.Equal(t, a.Stats().Step, b.Stats().Step)
				require.Equal(t, a.Stats().Loss, b.Stats().Loss)
				all := tc.data.all()
				require.Equal(t, predictY(t, a, all), predictY(t, b, all))

				fit(t, a, tc.data, 1, 32)
				fit(t, b, tc.data, 1, 32)
				require.Equal(t, predictY(t, a, all), predictY(t, b, all), "training diverged after the reload")
				require.Equal(t, state(t, a), state(t, b))
			})
		}
	}
}

// Every option, the name, version and metadata survive a save and load,
// the metadata in Info and exports too.
func TestSaveLoadKeepsEveryOption(t *testing.T) {
	opts := train.Options{
		Name: "ctr", Seed: 77, Solver: train.Momentum, LearningRate: 0.123, Momentum: 0.5,
		Beta1: 0.8, Beta2: 0.95, Epsilon: 1e-6, L2: 0.01, ClipValue: 3, ClipNorm: 4,
		MaxBatchRows: 128, Version: 42, Metadata: map[string]string{"owner": "ranking", "": "empty key", "k": ""},
	}
	a := newTrainer(t, train.MLP{Sizes: []int{3, 2}, Activation: train.Tanh, Output: train.Regression}, opts)
	path := filepath.Join(t.TempDir(), "state.qvt")
	require.NoError(t, a.SaveFile(context.Background(), path))
	b, err := train.LoadFile(path, train.LoadOptions{})
	require.NoError(t, err)
	defer b.Close()
	got := b.Options()
	require.Equal(t, opts, got)
	require.Equal(t, train.MLP{Sizes: []int{3, 2}, Activation: train.Tanh, Output: train.Regression}, b.Spec())
	info := b.Info()
	require.Equal(t, "ctr", info.Name)
	require.Equal(t, int64(42), info.Version)
	require.Equal(t, "ranking", info.Custom["owner"])
	require.Equal(t, "0", info.Custom[train.MetaSteps])
}

// Load refuses every truncation and every single-byte corruption of a
// state file with ErrFormat, and never panics.
func TestLoadRefusesDamagedState(t *testing.T) {
	a := newTrainer(t, train.TwoTower{User: []int{3, 2}, Item: []int{2, 2}}, train.Options{Metadata: map[string]string{"a": "b"}})
	in := map[string]serving.Tensor{"user": f32([]int64{1, 3}, 1, 2, 3), "item": f32([]int64{1, 2}, 1, 2)}
	_, err := a.Update(context.Background(), in, f32([]int64{1}, 1))
	require.NoError(t, err)
	good := state(t, a)
	for n := 0; n < len(good); n++ {
		_, err := train.Load(bytes.NewReader(good[:n]), train.LoadOptions{})
		require.ErrorIs(t, err, train.ErrFormat, "truncated to %d bytes", n)
	}
	for i := range good {
		bad := bytes.Clone(good)
		bad[i] ^= 0x40
		_, err := train.Load(bytes.NewReader(bad), train.LoadOptions{})
		require.ErrorIs(t, err, train.ErrFormat, "byte %d flipped", i)
	}
	_, err = train.Load(bytes.NewReader(append(bytes.Clone(good), 0)), train.LoadOptions{})
	require.ErrorIs(t, err, train.ErrFormat, "a trailing byte")
}

// A state whose checksum is right but whose content is not (as a buggy or
// hostile writer would make) is refused by the value checks: each case
// rewrites the body and fixes the checksum.
func TestLoadRefusesBadValues(t *testing.T) {
	a := newTrainer(t, train.MLP{Sizes: []int{2, 2}, Output: train.Regression}, train.Options{Solver: train.SGD})
	good := state(t, a)
	body := good[:len(good)-checkfile.TrailerSize]
	// Offsets in the body (see the layout in state.go): magic 8, version 2,
	// kind, activation, output, towers (1), sizes count (1), 2 sizes of 4.
	const sizes = 8 + 2 + 3 + 1 + 1
	const solver = sizes + 8
	for _, tc := range []struct {
		name string
		edit func(b []byte) []byte
		msg  string
	}{
		{"magic", func(b []byte) []byte { b[0] = 'X'; return b }, "magic"},
		{"version", func(b []byte) []byte { b[8] = 9; return b }, "version 9"},
		{"kind", func(b []byte) []byte { b[10] = 7; return b }, "model kind 7"},
		{"zero size", func(b []byte) []byte { b[sizes] = 0; return b }, "every size"},
		{"huge size", func(b []byte) []byte { b[sizes+3] = 0x7f; return b }, "every size"},
		{"solver", func(b []byte) []byte { b[solver] = 9; return b }, "solver(9)"},
		{"negative rate", func(b []byte) []byte { b[solver+8] |= 0x80; return b }, "learning rate"},
		{"parameter bytes", func(b []byte) []byte { return b[:len(b)-4] }, "bytes of parameters"},
		{"NaN parameter", func(b []byte) []byte { copy(b[len(b)-4:], []byte{0, 0, 0xc0, 0x7f}); return b }, "not finite"},
		{"slots", func(b []byte) []byte { b[len(b)-4*6-1] = 2; return b }, "solver slots"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := checkfile.Append(tc.edit(bytes.Clone(body)))
			_, err := train.Load(bytes.NewReader(bad), train.LoadOptions{})
			require.ErrorIs(t, err, train.ErrFormat)
			require.Contains(t, err.Error(), tc.msg)
		})
	}
}

func TestLoadFileMissing(t *testing.T) {
	_, err := train.LoadFile(filepath.Join(t.TempDir(), "none"), train.LoadOptions{})
	require.ErrorIs(t, err, os.ErrNotExist)
}

// FuzzLoad feeds arbitrary bytes to Load: it must return a trainer or an
// ErrFormat error, never panic, and a trainer it returns must save back to
// the same bytes. Seeds include valid states, so the fuzzer mutates real
// layouts (with their checksum rewritten, to reach the parser).
func FuzzLoad(f *testing.F) {
	src, err := train.New(train.MLP{Sizes: []int{2, 2, 1}}, train.Options{})
	if err != nil {
		f.Fatal(err)
	}
	var model bytes.Buffer
	if err := src.Export(&model); err != nil {
		f.Fatal(err)
	}
	for _, spec := range []train.Spec{
		train.LogisticRegression{Features: 2},
		train.MLP{Sizes: []int{2, 3, 3}, Output: train.Multiclass, Activation: train.Tanh},
		train.TwoTower{User: []int{2, 2}, Item: []int{1, 2}},
		train.ONNXModel{Model: model.Bytes()},
	} {
		tr, err := train.New(spec, train.Options{Metadata: map[string]string{"k": "v"}, Solver: train.Momentum})
		if err != nil {
			f.Fatal(err)
		}
		var b bytes.Buffer
		if err := tr.Save(context.Background(), &b); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes(), false)
		f.Add(b.Bytes()[:b.Len()-checkfile.TrailerSize], true)
	}
	f.Fuzz(func(t *testing.T, data []byte, fixChecksum bool) {
		if fixChecksum {
			data = checkfile.Append(data)
		}
		tr, err := train.Load(bytes.NewReader(data), train.LoadOptions{})
		if err != nil {
			if !errors.Is(err, train.ErrFormat) {
				t.Fatalf("error not matching ErrFormat: %v", err)
			}
			return
		}
		defer tr.Close()
		var b bytes.Buffer
		if err := tr.Save(context.Background(), &b); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.Bytes(), data) {
			t.Fatalf("a loaded state saves to different bytes")
		}
	})
}
