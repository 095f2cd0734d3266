package serving_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	. "github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/onnx"
	"github.com/quiverml/quiver/serving/servingtest"
	"github.com/stretchr/testify/require"
)

// testModel returns the path of a committed test model.
func testModel(name string) string { return servingtest.ModelPath(name) }

// thirdPartyModel returns a model shipped in onnxruntime_go's test data,
// a real model exported by other tools (e.g. scikit-learn).
func thirdPartyModel(t *testing.T, name string) string {
	t.Helper()
	return servingtest.ThirdPartyModel(t, name)
}

func load(t testing.TB, name string, opts onnx.Options) *onnx.Model {
	t.Helper()
	m, err := onnx.Load(context.Background(), testModel(name), opts)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

func f32(shape []int64, vals ...float32) Tensor { return NewTensor(shape, vals) }

func seq(n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i%17-8) * scale
	}
	return v
}

// callers runs requests on goroutines and collects what went wrong, so that
// every assertion stays on the test goroutine.
type callers struct {
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

// Go runs f on a new goroutine; an error it returns is reported by Wait.
func (c *callers) Go(f func() error) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := f(); err != nil {
			c.mu.Lock()
			c.errs = append(c.errs, err)
			c.mu.Unlock()
		}
	}()
}

// Wait waits for every goroutine started by Go and returns their errors
// joined.
func (c *callers) Wait() error {
	c.wg.Wait()
	return errors.Join(c.errs...)
}

// expect returns an error when got differs from want.
func expect(what string, want, got any) error {
	if !reflect.DeepEqual(want, got) {
		return fmt.Errorf("%s: got %v, want %v", what, got, want)
	}
	return nil
}
