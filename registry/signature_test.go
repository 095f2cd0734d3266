package registry

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/quiverml/quiver/internal/onnxpb"
	"github.com/quiverml/quiver/serving/onnx"
)

func modelPath(name string) string { return filepath.Join("..", "testdata", "models", name) }

func spec(name, elem string, shape ...int64) TensorSpec {
	if shape == nil {
		shape = []int64{}
	}
	return TensorSpec{Name: name, ElementType: elem, Shape: shape}
}

func TestSignatureFromONNXFiles(t *testing.T) {
	tests := []struct {
		file string
		want Signature
	}{
		{"mlp.onnx", Signature{
			Inputs:  []TensorSpec{spec("x", "float32", -1, 16)},
			Outputs: []TensorSpec{spec("y", "float32", -1, 4)},
		}},
		{"multi_io.onnx", Signature{
			Inputs: []TensorSpec{spec("a", "float32", -1, 4), spec("b", "float32", -1, 4), spec("ids", "int64", -1, 3)},
			Outputs: []TensorSpec{spec("sum", "float32", -1, 4), spec("prod", "float32", -1, 4),
				spec("ids_next", "int64", -1, 3), spec("positive", "bool", -1, 4)},
		}},
		{"fixed_batch.onnx", Signature{
			Inputs:  []TensorSpec{spec("x", "float32", 4, 8)},
			Outputs: []TensorSpec{spec("y", "float32", 4, 8)},
		}},
		{"image.onnx", Signature{
			Inputs:  []TensorSpec{spec("img", "float32", -1, 3, -1, -1)},
			Outputs: []TensorSpec{spec("features", "float32", -1, 3)},
		}},
		{"state.onnx", Signature{
			Inputs:  []TensorSpec{spec("x", "float32", -1, 4), spec("h", "float32", 1, -1, 4), spec("scale", "float32")},
			Outputs: []TensorSpec{spec("y", "float32", -1, 4), spec("h_next", "float32", 1, -1, 4)},
		}},
		{"sequence.onnx", Signature{
			Inputs:  []TensorSpec{spec("x", "float32", -1, 2)},
			Outputs: []TensorSpec{{Name: "parts"}, spec("same", "float32", -1, 2)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := SignatureFromONNXFile(modelPath(tt.file))
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			data, err := os.ReadFile(modelPath(tt.file))
			require.NoError(t, err)
			fromBytes, err := SignatureFromONNX(data)
			require.NoError(t, err)
			require.Equal(t, got, fromBytes)
		})
	}
}

// The signature read from the file is the one the ONNX Runtime engine
// reports once the model is loaded, so a recorded signature never stops
// its own version from loading.
func TestSignatureFromONNXMatchesLoadedModel(t *testing.T) {
	paths, err := filepath.Glob(modelPath("*.onnx"))
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			m, err := onnx.Load(context.Background(), path, onnx.Options{})
			require.NoError(t, err)
			defer m.Close()
			got, err := SignatureFromONNXFile(path)
			require.NoError(t, err)
			require.Equal(t, SignatureOf(m.Info()), got)
			require.NoError(t, CheckSignature(got, m.Info()))
		})
	}
}

func TestSignatureFromONNXSkipsInitializerInputs(t *testing.T) {
	g := &onnxpb.GraphProto{
		Name: proto.String("g"),
		Node: []*onnxpb.NodeProto{
			{OpType: proto.String("MatMul"), Input: []string{"x", "w"}, Output: []string{"xw"}},
			{OpType: proto.String("Add"), Input: []string{"xw", "bias"}, Output: []string{"y"}},
		},
		Initializer: []*onnxpb.TensorProto{onnxpb.Float32Tensor("w", []int64{3, 2}, make([]float32, 6))},
		SparseInitializer: []*onnxpb.SparseTensorProto{{
			Values:  onnxpb.Float32Tensor("bias", []int64{1}, []float32{1}),
			Indices: &onnxpb.TensorProto{Name: proto.String("bias_idx"), Dims: []int64{1}, DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Int64Data: []int64{0}},
			Dims:    []int64{2},
		}},
		// w and bias have defaults: callers need not (and, to ONNX Runtime,
		// cannot) send them.
		Input: []*onnxpb.ValueInfoProto{
			onnxpb.TensorInfo("x", onnxpb.TensorProto_FLOAT, "n", 3),
			onnxpb.TensorInfo("w", onnxpb.TensorProto_FLOAT, 3, 2),
			onnxpb.TensorInfo("bias", onnxpb.TensorProto_FLOAT, 2),
		},
		Output: []*onnxpb.ValueInfoProto{onnxpb.TensorInfo("y", onnxpb.TensorProto_FLOAT, "n", 2)},
	}
	data, err := proto.Marshal(onnxpb.Model(g, 1, nil))
	require.NoError(t, err)
	sig, err := SignatureFromONNX(data)
	require.NoError(t, err)
	require.Equal(t, Signature{
		Inputs:  []TensorSpec{spec("x", "float32", -1, 3)},
		Outputs: []TensorSpec{spec("y", "float32", -1, 2)},
	}, sig)
	require.Equal(t, "(x float32[-1 3]) -> (y float32[-1 2])", sig.String())
}

func TestSignatureFromONNXRefusesBadBytes(t *testing.T) {
	mlp, err := os.ReadFile(modelPath("mlp.onnx"))
	require.NoError(t, err)
	tag := func(num protowire.Number, typ protowire.Type) []byte { return protowire.AppendTag(nil, num, typ) }
	huge := append(tag(fieldModelGraph, protowire.BytesType), protowire.AppendVarint(nil, 1<<40)...)
	noGraph := protowire.AppendVarint(tag(fieldModelIRVersion, protowire.VarintType), 8)
	graphOnly := protowire.AppendBytes(tag(fieldModelGraph, protowire.BytesType), nil)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "ir_version 0, graph present false"},
		{"text", []byte("definitely not protobuf"), "not an ONNX model"},
		{"truncated", mlp[:200], "field of 2889 bytes at byte 31 overruns its message (169 bytes left)"},
		{"claims a terabyte", huge, "overruns its message"},
		{"no graph", noGraph, "ir_version 8, graph present false"},
		{"no ir_version", graphOnly, "ir_version 0, graph present true"},
		{"group", append(slicesClone(noGraph), tag(3, protowire.StartGroupType)...), "wire type 3"},
		{"varint overflow", append(tag(fieldModelIRVersion, protowire.VarintType), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), "overflows"},
		{"bad input", append(slicesClone(mlp), protowire.AppendBytes(tag(fieldModelGraph, protowire.BytesType),
			protowire.AppendBytes(tag(fieldGraphInput, protowire.BytesType), []byte{0xff}))...), "graph input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			alloc := allocated(func() { _, err = SignatureFromONNX(tt.data) })
			require.ErrorIs(t, err, ErrBadInput)
			require.ErrorContains(t, err, tt.want)
			require.Less(t, alloc, uint64(64<<10), "allocation follows the bytes given, not the lengths they claim")
		})
	}
	_, err = SignatureFromONNXFile(filepath.Join(t.TempDir(), "missing.onnx"))
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = SignatureFromONNXFile(t.TempDir())
	require.ErrorIs(t, err, ErrBadInput)
}

func slicesClone(b []byte) []byte { return append([]byte(nil), b...) }

// allocated returns the bytes fn allocates: the least of a few runs, so
// that what other goroutines allocate meanwhile does not count.
func allocated(fn func()) uint64 {
	least := uint64(math.MaxUint64)
	for range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		fn()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}

func mlpBytes(t testing.TB, sizes ...int) []byte {
	t.Helper()
	b, err := onnxpb.MLP(onnxpb.MLPSpec{Sizes: sizes, Seed: uint64(len(sizes))})
	require.NoError(t, err)
	return b
}

func TestPublishRecordsSignature(t *testing.T) {
	mlpSig := Signature{Inputs: []TensorSpec{spec("x", "float32", -1, 16)}, Outputs: []TensorSpec{spec("y", "float32", -1, 4)}}
	stateSig, err := SignatureFromONNXFile(modelPath("state.onnx"))
	require.NoError(t, err)
	mlp, err := os.ReadFile(modelPath("mlp.onnx"))
	require.NoError(t, err)
	tests := []struct {
		name  string
		files []File
		meta  Meta
		want  Signature
	}{
		{"from data", []File{{Name: "model.onnx", Data: mlp}}, Meta{}, mlpSig},
		{"from a path", []File{{Name: "model.onnx", Path: modelPath("mlp.onnx")}}, Meta{}, mlpSig},
		{"scalar input", []File{{Name: "state.onnx", Path: modelPath("state.onnx")}}, Meta{}, stateSig},
		{"entry among other files", []File{{Name: "vocab.txt", Data: []byte("a b")}, {Name: "model.ONNX", Data: mlp}},
			Meta{Entry: "model.ONNX"}, mlpSig},
		{"format onnx, any name", []File{{Name: "model.bin", Data: mlp}}, Meta{Format: "onnx"}, mlpSig},
		{"default format, not .onnx: not read", []File{{Name: "model.bin", Data: mlp}}, Meta{}, Signature{}},
		{"other format: not read", []File{{Name: "model.onnx", Data: []byte("x")}}, Meta{Format: "custom"}, Signature{}},
		{"agreeing signature kept as given", []File{{Name: "model.onnx", Data: mlp}},
			Meta{Signature: Signature{Inputs: []TensorSpec{{Name: "x", Shape: []int64{-1, -1}}}}},
			Signature{Inputs: []TensorSpec{{Name: "x", Shape: []int64{-1, -1}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := newStore(t)
			v, err := s.Publish(ctx, "m", tt.files, tt.meta)
			require.NoError(t, err)
			require.Equal(t, tt.want, v.Signature)

			// The signature survives the manifest's trip to disk, scalar
			// shapes ([]) included.
			reopened, err := Open(s.Root(), Options{})
			require.NoError(t, err)
			got, err := reopened.Get(ctx, "m", v.Number)
			require.NoError(t, err)
			require.Equal(t, tt.want, got.Signature)
		})
	}
}

func TestPublishChecksONNXEntry(t *testing.T) {
	mlp, err := os.ReadFile(modelPath("mlp.onnx"))
	require.NoError(t, err)
	tests := []struct {
		name    string
		files   []File
		meta    Meta
		want    error
		message string
	}{
		{"wrong shape", []File{{Name: "m.onnx", Data: mlp}},
			Meta{Signature: Signature{Inputs: []TensorSpec{{Name: "x", ElementType: "float32", Shape: []int64{-1, 32}}}}},
			ErrSignature, `input "x": model has shape [-1 16], manifest says [-1 32]`},
		{"wrong element type", []File{{Name: "m.onnx", Data: mlp}},
			Meta{Signature: Signature{Outputs: []TensorSpec{{Name: "y", ElementType: "int64"}}}},
			ErrSignature, `output "y": model has float32, manifest says int64`},
		{"unknown input", []File{{Name: "m.onnx", Data: mlp}},
			Meta{Signature: Signature{Inputs: []TensorSpec{{Name: "features"}}}},
			ErrSignature, `input "features" is missing from the model`},
		{"outputs only, agreeing", []File{{Name: "m.onnx", Data: mlpBytes(t, 16, 4)}},
			Meta{Signature: Signature{Outputs: []TensorSpec{{Name: "y"}}}}, nil, ""},
		{"not an onnx model", []File{{Name: "m.onnx", Data: []byte("definitely not protobuf")}}, Meta{},
			ErrBadInput, `entry "m.onnx": registry: bad argument: not an ONNX model`},
		{"truncated", []File{{Name: "m.onnx", Data: mlp[:200]}}, Meta{}, ErrBadInput, "overruns its message"},
		{"truncated, from a path", []File{{Name: "m.onnx", Path: writeTemp(t, mlp[:len(mlp)-3])}}, Meta{}, ErrBadInput, "m.onnx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := newStore(t)
			_, err := s.Publish(ctx, "m", tt.files, tt.meta)
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.want)
			require.ErrorContains(t, err, tt.message)
			versions, err := s.Versions(ctx, "m")
			require.NoError(t, err)
			require.Empty(t, versions, "a refused version is not published")
			entries, err := os.ReadDir(filepath.Join(s.Root(), "m"))
			require.NoError(t, err)
			require.Empty(t, entries, "nothing staged is left behind")
		})
	}
}

func writeTemp(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.onnx")
	require.NoError(t, os.WriteFile(path, data, 0o644))
	return path
}

func TestCheckCompatible(t *testing.T) {
	x := func(shape ...int64) TensorSpec { return spec("x", "float32", shape...) }
	y := func(shape ...int64) TensorSpec { return spec("y", "float32", shape...) }
	sig := func(in []TensorSpec, out ...TensorSpec) Signature { return Signature{Inputs: in, Outputs: out} }
	base := sig([]TensorSpec{x(-1, 16)}, y(-1, 4))
	tests := []struct {
		name string
		next Signature
		want string // "" when compatible
	}{
		{"same", base, ""},
		{"input axis widened", sig([]TensorSpec{x(-1, -1)}, y(-1, 4)), ""},
		{"output axis narrowed", sig([]TensorSpec{x(-1, 16)}, y(8, 4)), ""},
		{"extra output", sig([]TensorSpec{x(-1, 16)}, y(-1, 4), spec("score", "float32", -1)), ""},
		{"input shape unrecorded", sig([]TensorSpec{{Name: "x", ElementType: "float32"}}, y(-1, 4)), ""},
		{"nothing recorded", Signature{}, ""},
		{"input width", sig([]TensorSpec{x(-1, 32)}, y(-1, 4)), `input "x": axis 1 is 16, the new version has 32`},
		{"input batch fixed", sig([]TensorSpec{x(1, 16)}, y(-1, 4)), `input "x": axis 0 is dynamic, the new version fixes it to 1`},
		{"input rank", sig([]TensorSpec{x(-1, 16, 1)}, y(-1, 4)), `input "x": shape [-1 16] has rank 2, the new version has [-1 16 1] (rank 3)`},
		{"input type", sig([]TensorSpec{spec("x", "float16", -1, 16)}, y(-1, 4)), `input "x": element type float32, the new version has float16`},
		{"input renamed", sig([]TensorSpec{spec("features", "float32", -1, 16)}, y(-1, 4)),
			`input "x" is not an input of the new version (callers send it); the new version needs input "features", which callers do not send`},
		{"input added", sig([]TensorSpec{x(-1, 16), spec("mask", "bool", -1)}, y(-1, 4)), `the new version needs input "mask"`},
		{"output width", sig([]TensorSpec{x(-1, 16)}, y(-1, 3)), `output "y": axis 1 is 4, the new version has 3`},
		{"output axis dynamic", sig([]TensorSpec{x(-1, 16)}, y(-1, -1)), `output "y": axis 1 is 4, the new version leaves it dynamic`},
		{"output removed", sig([]TensorSpec{x(-1, 16)}, spec("score", "float32", -1, 4)), `output "y" is missing from the new version`},
		{"output type", sig([]TensorSpec{x(-1, 16)}, spec("y", "float64", -1, 4)), `output "y": element type float32, the new version has float64`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckCompatible(base, tt.next)
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrIncompatible)
			require.ErrorContains(t, err, tt.want)
		})
	}
	require.NoError(t, CheckCompatible(Signature{}, base), "an unrecorded signature is compatible with anything")
}

func TestAliasMovesFollowSignatures(t *testing.T) {
	ctx := context.Background()
	publish := func(t *testing.T, s *Store, data []byte, meta Meta) int64 {
		v, err := s.Publish(ctx, "m", []File{{Name: "model.onnx", Data: data}}, meta)
		require.NoError(t, err)
		return v.Number
	}
	tests := []struct {
		name string
		next func(t *testing.T) ([]byte, Meta)
		want string // "" when the move is allowed
	}{
		{"retrained, same signature", func(t *testing.T) ([]byte, Meta) { return mlpBytes(t, 16, 8, 4), Meta{} }, ""},
		{"another input width", func(t *testing.T) ([]byte, Meta) { return mlpBytes(t, 32, 8, 4), Meta{} },
			`version 1 -> 2: registry: incompatible signature: input "x": axis 1 is 16, the new version has 32 (shape [-1 16], new [-1 32])`},
		{"another output width", func(t *testing.T) ([]byte, Meta) { return mlpBytes(t, 16, 3), Meta{} },
			`output "y": axis 1 is 4, the new version has 3`},
		{"no signature recorded", func(t *testing.T) ([]byte, Meta) { return []byte("opaque"), Meta{Format: "custom"} }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			v1 := publish(t, s, mlpBytes(t, 16, 4), Meta{})
			data, meta := tt.next(t)
			v2 := publish(t, s, data, meta)
			require.NoError(t, s.SetAlias(ctx, "m", "production", v1))
			require.NoError(t, s.SetAlias(ctx, "m", "canary", v2), "a new alias may point anywhere")
			auditBefore, err := s.Audit(ctx)
			require.NoError(t, err)

			err = s.SetAlias(ctx, "m", "production", v2)
			if tt.want == "" {
				require.NoError(t, err)
				requireAlias(t, s, "production", v2, []int64{v1})
				back, err := s.Rollback(ctx, "m", "production")
				require.NoError(t, err)
				require.Equal(t, v1, back)
				return
			}
			require.ErrorIs(t, err, ErrIncompatible)
			require.ErrorContains(t, err, tt.want)
			require.ErrorContains(t, err, "MoveOptions{Force: true}")
			requireAlias(t, s, "production", v1, nil)
			auditAfter, err := s.Audit(ctx)
			require.NoError(t, err)
			require.Equal(t, auditBefore, auditAfter, "a refused move is not audited")

			// Forced, it moves; rolling back to the incompatible version is
			// refused the same way, and forced too.
			require.NoError(t, s.SetAlias(ctx, "m", "production", v2, MoveOptions{Force: true}))
			requireAlias(t, s, "production", v2, []int64{v1})
			_, err = s.Rollback(ctx, "m", "production")
			require.ErrorIs(t, err, ErrIncompatible)
			require.ErrorContains(t, err, "version 2 -> 1")
			requireAlias(t, s, "production", v2, []int64{v1})
			back, err := s.Rollback(ctx, "m", "production", MoveOptions{Force: true})
			require.NoError(t, err)
			require.Equal(t, v1, back)
			requireAlias(t, s, "production", v1, nil)
		})
	}
}

func TestMoveOptionsAtMostOne(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	v := publishText(t, s, "m", "v1")
	err := s.SetAlias(ctx, "m", "production", v.Number, MoveOptions{}, MoveOptions{Force: true})
	require.ErrorIs(t, err, ErrBadInput)
	_, err = s.Rollback(ctx, "m", "production", MoveOptions{}, MoveOptions{})
	require.ErrorIs(t, err, ErrBadInput)
}

func requireAlias(t *testing.T, s *Store, name string, version int64, previous []int64) {
	t.Helper()
	aliases, err := s.Aliases(context.Background(), "m")
	require.NoError(t, err)
	for _, a := range aliases {
		if a.Name == name {
			require.Equal(t, version, a.Version, "alias %s", name)
			require.Equal(t, previous, a.Previous, "alias %s history", name)
			return
		}
	}
	t.Fatalf("no alias %q in %+v", name, aliases)
}

func FuzzSignatureFromONNX(f *testing.F) {
	paths, err := filepath.Glob(modelPath("*.onnx"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(data[:len(data)/2])
	}
	f.Add([]byte{})
	f.Add([]byte("definitely not protobuf"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var sig Signature
		var err error
		alloc := allocated(func() { sig, err = SignatureFromONNX(data) })
		// Decoded Go values cost more than their encoding (a 2-byte
		// dimension becomes a struct), but only in proportion to it.
		if limit := uint64(256*len(data) + 64<<10); alloc > limit {
			t.Fatalf("%d bytes allocated for %d bytes of input; want at most %d", alloc, len(data), limit)
		}
		if err != nil {
			if !errors.Is(err, ErrBadInput) {
				t.Fatalf("error %v does not match ErrBadInput", err)
			}
			return
		}
		// What is accepted reads the same twice and never contradicts
		// itself: a recorded signature checks against itself.
		again, err := SignatureFromONNX(data)
		if err != nil || again.String() != sig.String() {
			t.Fatalf("second read gave %v, %v; first %v", again, err, sig)
		}
		if err := CheckCompatible(sig, sig); err != nil {
			t.Fatalf("signature incompatible with itself: %v", err)
		}
	})
}
