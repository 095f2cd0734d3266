package onnx

import (
	"github.com/quiverml/quiver/serving"

	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"
)

// hasGPU reports whether an NVIDIA GPU is visible to this process.
func hasGPU() bool {
	if _, err := os.Stat("/dev/nvidia0"); err != nil {
		return false
	}
	return exec.Command("nvidia-smi", "-L").Run() == nil
}

// TestCUDAOnGPU runs only where a GPU and a CUDA-enabled ONNX Runtime
// (QUIVER_CUDA_ORT_LIB) are present; CI machines have neither.
func TestCUDAOnGPU(t *testing.T) {
	lib := os.Getenv("QUIVER_CUDA_ORT_LIB")
	if !hasGPU() || lib == "" {
		t.Skip("needs an NVIDIA GPU and QUIVER_CUDA_ORT_LIB pointing at a CUDA build of ONNX Runtime")
	}
	m, err := Load(context.Background(), testModel("mlp"), Options{Provider: ProviderCUDA, LibraryPath: lib})
	require.NoError(t, err)
	defer m.Close()
	require.Equal(t, "CUDA", m.Info().Provider)
	x := seq(16, 0.1)
	out, err := m.Predict(context.Background(), map[string]serving.Tensor{"x": f32([]int64{1, 16}, x...)})
	require.NoError(t, err)
	want := mlpReference(t, x, 1)
	for i, v := range out["y"].Tensor.Data.([]float32) {
		require.InDelta(t, want[i], v, 1e-3)
	}
}
