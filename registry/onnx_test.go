package registry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quiverml/quiver/internal/onnxpb"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/onnx"
)

// versionedMLP returns an ONNX MLP x[batch,16] -> y[batch,4] (Gemm, Relu,
// Gemm) whose weights depend on version and whose output bias is
// 1000*version, so round(y/1000) tells which version answered.
func versionedMLP(t testing.TB, version int64) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(version), 42))
	tensor := func(name string, dims []int64, scale, offset float64) *onnxpb.TensorProto {
		n := int64(1)
		for _, d := range dims {
			n *= d
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(rng.NormFloat64()*scale + offset)
		}
		return &onnxpb.TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), FloatData: data}
	}
	valueInfo := func(name string, cols int64) *onnxpb.ValueInfoProto {
		return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Shape: &onnxpb.TensorShapeProto{
				Dim: []*onnxpb.TensorShapeProto_Dimension{
					{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "batch"}},
					{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: cols}},
				}}}}}}
	}
	m := &onnxpb.ModelProto{
		IrVersion:    proto.Int64(8),
		ProducerName: proto.String("quiver-registry-test"),
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Version: proto.Int64(17)}},
		Graph: &onnxpb.GraphProto{
			Name: proto.String(fmt.Sprintf("mlp_v%d", version)),
			Node: []*onnxpb.NodeProto{
				{OpType: proto.String("Gemm"), Input: []string{"x", "w0", "b0"}, Output: []string{"h0_pre"}},
				{OpType: proto.String("Relu"), Input: []string{"h0_pre"}, Output: []string{"h0"}},
				{OpType: proto.String("Gemm"), Input: []string{"h0", "w1", "b1"}, Output: []string{"y"}},
			},
			Initializer: []*onnxpb.TensorProto{
				tensor("w0", []int64{16, 8}, 0.25, 0),
				tensor("b0", []int64{8}, 0.1, 0),
				tensor("w1", []int64{8, 4}, 0.25, 0),
				tensor("b1", []int64{4}, 0.01, 1000*float64(version)),
			},
			Input:  []*onnxpb.ValueInfoProto{valueInfo("x", 16)},
			Output: []*onnxpb.ValueInfoProto{valueInfo("y", 4)},
		},
	}
	data, err := proto.Marshal(m)
	require.NoError(t, err)
	return data
}

// countingLoader wraps a Loader and counts the models it opened and that
// were closed.
type countingLoader struct {
	next           Loader
	opened, closed atomic.Int64
}

type countedModel struct {
	serving.Model
	cl   *countingLoader
	once sync.Once
}

func (m *countedModel) Close() error {
	err := m.Model.Close()
	m.once.Do(func() { m.cl.closed.Add(1) })
	return err
}

func (cl *countingLoader) load(ctx context.Context, v Version, dir string) (serving.Model, error) {
	m, err := cl.next(ctx, v, dir)
	if err != nil {
		return nil, err
	}
	cl.opened.Add(1)
	return &countedModel{Model: m, cl: cl}, nil
}

func mlpInputs(rng *rand.Rand, rows int) map[string]serving.Tensor {
	x := make([]float32, rows*16)
	for i := range x {
		x[i] = rng.Float32()
	}
	return map[string]serving.Tensor{"x": serving.NewTensor([]int64{int64(rows), 16}, x)}
}

// versionOf decodes the version from a versionedMLP output.
func versionOf(out map[string]serving.Value) (int64, error) {
	y, err := out["y"].Tensor.Float32s()
	if err != nil {
		return 0, err
	}
	if len(y) == 0 {
		return 0, errors.New("empty output")
	}
	v := math.Round(float64(y[0]) / 1000)
	for _, e := range y {
		if math.Round(float64(e)/1000) != v {
			return 0, fmt.Errorf("output %v mixes versions", y)
		}
	}
	return int64(v), nil
}

func publishMLP(t testing.TB, s *Store, model string, version int64) Version {
	t.Helper()
	v, err := s.Publish(context.Background(), model, []File{{Name: "model.onnx", Data: versionedMLP(t, version)}},
		Meta{Number: version, Signature: Signature{
			Inputs:  []TensorSpec{{Name: "x", ElementType: "float32", Shape: []int64{-1, 16}}},
			Outputs: []TensorSpec{{Name: "y", ElementType: "float32", Shape: []int64{-1, 4}}},
		}})
	require.NoError(t, err)
	return v
}

func TestFileLoaderServesCommittedModel(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	path := filepath.Join("..", "testdata", "models", "mlp.onnx")
	m, err := onnx.Load(context.Background(), path, onnx.Options{})
	require.NoError(t, err)
	sig := SignatureOf(m.Info())
	require.NoError(t, m.Close())
	_, err = s.Publish(ctx, "mlp", []File{{Name: "mlp.onnx", Path: path}}, Meta{Signature: sig})
	require.NoError(t, err)

	before := onnx.LiveSessions()
	srv, err := NewServer(s, FileLoader("onnx", onnx.Opener(onnx.Options{WarmUp: true})), ServerOptions{})
	require.NoError(t, err)
	require.NoError(t, srv.Sync(ctx))
	h, err := srv.Model("mlp", "")
	require.NoError(t, err)
	out, sv, err := h.PredictVersion(ctx, mlpInputs(rand.New(rand.NewPCG(1, 2)), 3))
	require.NoError(t, err)
	require.Equal(t, int64(1), sv.Version)
	require.Equal(t, []int64{3, 4}, out["y"].Tensor.Shape)
	require.Equal(t, "mlp@latest", h.Info().Name)
	require.Equal(t, before+1, onnx.LiveSessions())
	require.NoError(t, srv.Close())
	require.Equal(t, before, onnx.LiveSessions())
}

func TestFileLoaderRefusesBadVersions(t *testing.T) {
	ctx := context.Background()
	// Publish refuses these files when their entry is an ONNX entry
	// (TestPublishChecksONNXEntry); named .model, they are not read at
	// publish, so the loader's own checks are what refuse them here.
	tests := []struct {
		name  string
		files []File
		meta  Meta
		want  error
	}{
		{"signature mismatch", []File{{Name: "m.model", Data: versionedMLP(t, 2)}},
			Meta{Signature: Signature{Inputs: []TensorSpec{{Name: "features"}}}}, ErrSignature},
		{"wrong element type", []File{{Name: "m.model", Data: versionedMLP(t, 2)}},
			Meta{Signature: Signature{Outputs: []TensorSpec{{Name: "y", ElementType: "int64"}}}}, ErrSignature},
		{"wrong shape", []File{{Name: "m.model", Data: versionedMLP(t, 2)}},
			Meta{Signature: Signature{Inputs: []TensorSpec{{Name: "x", Shape: []int64{-1, 32}}}}}, ErrSignature},
		{"not an onnx file", []File{{Name: "m.model", Data: []byte("definitely not protobuf")}}, Meta{}, serving.ErrModel},
		{"truncated onnx", []File{{Name: "m.model", Data: versionedMLP(t, 2)[:200]}}, Meta{}, serving.ErrModel},
		{"other format", []File{{Name: "m.pt", Data: []byte("x")}}, Meta{Format: "torchscript"}, ErrBadInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			publishMLP(t, s, "m", 1)
			cl := &countingLoader{next: FileLoader("onnx", onnx.Opener(onnx.Options{}))}
			before := onnx.LiveSessions()
			srv, err := NewServer(s, cl.load, ServerOptions{})
			require.NoError(t, err)
			defer srv.Close()
			require.NoError(t, srv.Sync(ctx))
			h, err := srv.Model("m", "")
			require.NoError(t, err)

			tt.meta.Number = 2
			_, err = s.Publish(ctx, "m", tt.files, tt.meta)
			require.NoError(t, err)
			require.ErrorIs(t, srv.Sync(ctx), tt.want)
			out, err := h.Predict(ctx, mlpInputs(rand.New(rand.NewPCG(1, 2)), 1))
			require.NoError(t, err)
			v, err := versionOf(out)
			require.NoError(t, err)
			require.Equal(t, int64(1), v, "version 1 keeps serving")
			require.Equal(t, before+1, onnx.LiveSessions(), "a refused version leaves no session open")
		})
	}
}

// TestLoadSwapUnderTraffic runs 8 goroutines predicting on real ONNX
// models while the production alias moves 50 times (every fifth move a
// rollback), each move loading a fresh session and closing the drained one.
func TestLoadSwapUnderTraffic(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	const versions = 4
	for v := int64(1); v <= versions; v++ {
		publishMLP(t, s, "ranker", v)
	}
	require.NoError(t, s.SetAlias(ctx, "ranker", "production", 1))

	sessionsBefore := onnx.LiveSessions()
	cl := &countingLoader{next: FileLoader("onnx", onnx.Opener(onnx.Options{}))}
	srv, err := NewServer(s, cl.load, ServerOptions{
		PollInterval: 20 * time.Millisecond,
		Policy:       Policy{Latest: -1, DropPrevious: true},
		Aliases:      []string{"production"},
	})
	require.NoError(t, err)
	require.NoError(t, srv.Start(ctx))
	h, err := srv.Model("ranker", "production")
	require.NoError(t, err)

	// history[i] is what production may serve in phase i: the old and new
	// version while a move is applied, the new one after.
	var histMu sync.Mutex
	history := [][]int64{{1}}
	phase := func() int { histMu.Lock(); defer histMu.Unlock(); return len(history) - 1 }
	allowed := func(from, to int) map[int64]bool {
		histMu.Lock()
		defer histMu.Unlock()
		out := map[int64]bool{}
		for _, ph := range history[from : to+1] {
			for _, v := range ph {
				out[v] = true
			}
		}
		return out
	}

	stop := make(chan struct{})
	var requests, failures atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				p0 := phase()
				out, sv, err := h.PredictVersion(ctx, mlpInputs(rng, 1+rng.IntN(4)))
				p1 := phase()
				requests.Add(1)
				if err != nil {
					failures.Add(1)
					errc <- err
					return
				}
				v, err := versionOf(out)
				if err == nil && v != sv.Version {
					err = fmt.Errorf("output of version %d reported as %d", v, sv.Version)
				}
				if err == nil && !allowed(p0, p1)[v] {
					err = fmt.Errorf("version %d answered, live were %v", v, allowed(p0, p1))
				}
				if err != nil {
					failures.Add(1)
					errc <- err
					return
				}
			}
		}()
	}

	cur := int64(1)
	for i := range 50 {
		// Record the move before making it: the background poller may
		// apply it before Sync does.
		next := cur%versions + 1
		rollback := i%5 == 4
		if rollback {
			aliases, err := s.Aliases(ctx, "ranker")
			require.NoError(t, err)
			next = aliases[0].Previous[len(aliases[0].Previous)-1]
		}
		histMu.Lock()
		history = append(history, []int64{cur, next})
		histMu.Unlock()
		if rollback {
			got, err := s.Rollback(ctx, "ranker", "production")
			require.NoError(t, err)
			require.Equal(t, next, got)
		} else {
			require.NoError(t, s.SetAlias(ctx, "ranker", "production", next))
		}
		require.NoError(t, srv.Sync(ctx))
		got, ok := srv.Current("ranker", "production")
		require.True(t, ok)
		require.Equal(t, next, got.Number)
		histMu.Lock()
		history = append(history, []int64{next})
		histMu.Unlock()
		cur = next
		// Let requests run on each version: wait until a few more have
		// been answered (or a caller has failed and stopped).
		for target := requests.Load() + 8; requests.Load() < target && failures.Load() == 0; {
			runtime.Gosched()
		}
	}
	close(stop)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	require.Zero(t, failures.Load(), "no request may fail during swaps")
	require.Greater(t, requests.Load(), int64(50))
	st := srv.Stats()
	require.Equal(t, uint64(51), st.Swaps, "the first load and 50 moves")
	require.Zero(t, st.LoadFailures)

	require.NoError(t, srv.Close())
	require.Equal(t, cl.opened.Load(), cl.closed.Load(), "every loaded model was closed")
	require.GreaterOrEqual(t, cl.opened.Load(), int64(50), "each move loaded a fresh session")
	require.Equal(t, sessionsBefore, onnx.LiveSessions(), "no ONNX Runtime session leaked")
	t.Logf("%d requests across 50 moves; %d sessions opened and closed", requests.Load(), cl.opened.Load())
}

func TestMain(m *testing.M) {
	if os.Getenv("ONNXRUNTIME_LIB") == "" {
		if p, err := filepath.Abs(filepath.Join("..", "third_party", "onnxruntime", "libonnxruntime.so.1.30.0")); err == nil {
			if _, err := os.Stat(p); err == nil {
				os.Setenv("ONNXRUNTIME_LIB", p)
			}
		}
	}
	os.Exit(m.Run())
}
