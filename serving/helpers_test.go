package serving

import (
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// testModel returns the path of a committed test model.
func testModel(name string) string {
	return filepath.Join("..", "testdata", "models", name+".onnx")
}

var (
	ortModuleOnce sync.Once
	ortModuleDir  string
	ortModuleErr  error
)

// thirdPartyModel returns a model shipped in onnxruntime_go's test data,
// a real model exported by other tools (e.g. scikit-learn).
func thirdPartyModel(t *testing.T, name string) string {
	t.Helper()
	ortModuleOnce.Do(func() {
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/yalue/onnxruntime_go").Output()
		ortModuleDir, ortModuleErr = strings.TrimSpace(string(out)), err
	})
	require.NoError(t, ortModuleErr, "locating the onnxruntime_go module")
	return filepath.Join(ortModuleDir, "test_data", name)
}

func load(t testing.TB, name string, opts Options) *ONNXModel {
	t.Helper()
	m, err := Load(testModel(name), opts)
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
