package onnx

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseSignatureReadsDimNames(t *testing.T) {
	data, err := os.ReadFile(testModel("image"))
	require.NoError(t, err)
	sig, err := parseSignature(data)
	require.NoError(t, err)
	require.Equal(t, []dimInfo{{param: "batch"}, {value: 3}, {param: "H"}, {param: "W"}}, sig.dims["img"])
	require.Equal(t, []dimInfo{{param: "batch"}, {value: 3}}, sig.dims["features"])
}

func TestParseSignatureRejectsTruncatedBytes(t *testing.T) {
	data, err := os.ReadFile(testModel("mlp"))
	require.NoError(t, err)
	_, err = parseSignature(data[:len(data)-3])
	require.ErrorIs(t, err, errProto)
}

// FuzzParseSignature feeds arbitrary bytes to the model signature reader,
// which runs on every model file before ONNX Runtime sees it: it must return
// a signature or an error, never panic.
func FuzzParseSignature(f *testing.F) {
	for _, name := range []string{"mlp", "image", "state", "types", "sequence"} {
		data, err := os.ReadFile(testModel(name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(data[:len(data)/3])
	}
	f.Add([]byte{0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		sig, err := parseSignature(b)
		if err == nil && sig == nil {
			t.Fatal("nil signature without an error")
		}
	})
}
