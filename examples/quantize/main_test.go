package main

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRun(t *testing.T) {
	out := filepath.Join(t.TempDir(), "q.onnx")
	var buf bytes.Buffer
	require.NoError(t, run([]string{"-in", "../../quant/testdata/classifier.onnx", "-out", out, "-samples", "200"}, &buf))
	s := buf.String()
	require.Contains(t, s, "3 quantized, 0 skipped")
	require.Contains(t, s, "3.56x smaller")
	require.Contains(t, s, "label        200/200 equal")
	require.FileExists(t, out)

	buf.Reset()
	require.NoError(t, run([]string{"-in", "../../quant/testdata/classifier_opset11.onnx", "-out", out, "-samples", "0"}, &buf))
	require.Contains(t, buf.String(), "used one scale per weight")

	buf.Reset()
	require.NoError(t, run([]string{"-in", "../../quant/testdata/conv.onnx", "-out", out, "-int4", "-conv", "-samples", "8"}, &buf))
	require.Contains(t, buf.String(), "int4 axis -1")
	require.Contains(t, buf.String(), "top-1 agreement")

	require.Error(t, run([]string{"-in", "main.go", "-out", out}, &buf), "not an ONNX model")
	require.Error(t, run([]string{"-bogus"}, &buf))
}
