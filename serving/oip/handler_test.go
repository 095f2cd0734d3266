package oip_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/oip"
	pb "github.com/quiverml/quiver/serving/oip/inferencepb"
	"github.com/quiverml/quiver/serving/servingtest"
)

func seq(n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i%17-8)*scale + 0.1
	}
	return v
}

func TestHealthAndMetadata(t *testing.T) {
	m := load(t, "mlp")
	ts, _ := serve(t, oip.Models(map[string]serving.Model{"mlp": m}), oip.HandlerOptions{ServerName: "test", ServerVersion: "1.2.3"})

	r := get(t, ts.URL+"/v2/health/live")
	require.Equal(t, http.StatusOK, r.status)
	require.JSONEq(t, `{"live": true}`, string(r.body))

	r = get(t, ts.URL+"/v2/health/ready")
	require.Equal(t, http.StatusOK, r.status)
	require.JSONEq(t, `{"ready": true}`, string(r.body))

	r = get(t, ts.URL+"/v2")
	require.Equal(t, http.StatusOK, r.status)
	require.JSONEq(t, `{"name": "test", "version": "1.2.3", "extensions": ["binary_tensor_data"]}`, string(r.body))

	r = get(t, ts.URL+"/v2/models/mlp")
	require.Equal(t, http.StatusOK, r.status)
	require.JSONEq(t, `{"name": "mlp", "platform": "",
		"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 16]}],
		"outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 4]}]}`, string(r.body))

	r = get(t, ts.URL+"/v2/models/mlp/ready")
	require.Equal(t, http.StatusOK, r.status)
	require.JSONEq(t, `{"name": "mlp", "ready": true}`, string(r.body))

	r = get(t, ts.URL+"/v2/models/nope/ready")
	require.Equal(t, http.StatusNotFound, r.status)
	require.Contains(t, errorOf(t, r), `"nope" is not served; the models are "mlp"`)

	r = get(t, ts.URL+"/v2/models/mlp/versions/3")
	require.Equal(t, http.StatusNotFound, r.status)
	require.Contains(t, errorOf(t, r), "not versioned")

	r = get(t, ts.URL+"/v2/models/mlp/infer")
	require.Equal(t, http.StatusMethodNotAllowed, r.status)
	require.Equal(t, "POST", r.header.Get("Allow"))
	require.Contains(t, errorOf(t, r), "want POST")

	r = do(t, http.MethodPost, ts.URL+"/v2/health/live", nil, nil)
	require.Equal(t, http.StatusMethodNotAllowed, r.status)

	r = get(t, ts.URL+"/v1/models/mlp:predict")
	require.Equal(t, http.StatusNotFound, r.status)
	require.Contains(t, errorOf(t, r), "endpoints are under /v2")
}

func TestReadiness(t *testing.T) {
	// No model: not ready.
	ts, _ := serve(t, oip.Models(nil), oip.HandlerOptions{})
	r := get(t, ts.URL+"/v2/health/ready")
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	require.JSONEq(t, `{"ready": false}`, string(r.body))

	// A custom readiness.
	var ready bool
	var mu sync.Mutex
	ts, _ = serve(t, oip.Models(nil), oip.HandlerOptions{Ready: func(context.Context) bool {
		mu.Lock()
		defer mu.Unlock()
		return ready
	}})
	require.Equal(t, http.StatusServiceUnavailable, get(t, ts.URL+"/v2/health/ready").status)
	mu.Lock()
	ready = true
	mu.Unlock()
	require.Equal(t, http.StatusOK, get(t, ts.URL+"/v2/health/ready").status)
}

// An answer over JSON, and over binary data, equals the model's own.
func TestInferMatchesModel(t *testing.T) {
	m := load(t, "mlp")
	b, err := serving.NewBatcher(m, serving.BatcherOptions{KeepModelOpen: true})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	ts, _ := serve(t, oip.Models(map[string]serving.Model{"mlp": m, "batched": b}), oip.HandlerOptions{})

	x := serving.NewTensor([]int64{3, 16}, seq(48, 0.37))
	want, err := m.Predict(context.Background(), map[string]serving.Tensor{"x": x})
	require.NoError(t, err)
	y := want["y"].Tensor
	require.Equal(t, []int64{3, 4}, y.Shape)

	for _, name := range []string{"mlp", "batched"} {
		t.Run(name+"/json", func(t *testing.T) {
			r := postJSON(t, ts.URL+"/v2/models/"+name+"/infer", wireRequest{ID: "req-42", Inputs: []wireTensor{tensorInput("x", x)}})
			res, raws := decodeResponse(t, r)
			require.Empty(t, raws)
			require.Equal(t, name, res.ModelName)
			require.Equal(t, "req-42", res.ID)
			require.Empty(t, res.ModelVersion, "unversioned models report no version")
			require.Len(t, res.Outputs, 1)
			require.Equal(t, "y", res.Outputs[0].Name)
			require.Equal(t, "FP32", res.Outputs[0].Datatype)
			require.Equal(t, []int64{3, 4}, res.Outputs[0].Shape)
			wantJSONData(t, y, res.Outputs[0].Data)
		})
		t.Run(name+"/binary", func(t *testing.T) {
			body, hdr := binaryRequest(t, wireRequest{Parameters: map[string]any{"binary_data_output": true},
				Inputs: []wireTensor{{Name: "x", Datatype: "FP32", Shape: x.Shape}}}, []serving.Tensor{x})
			r := do(t, http.MethodPost, ts.URL+"/v2/models/"+name+"/infer", hdr, body)
			res, raws := decodeResponse(t, r)
			require.Len(t, res.Outputs, 1)
			require.Equal(t, rawBytes(y), raws["y"])
		})
	}

	t.Run("nested", func(t *testing.T) {
		flat := x.Data.([]float32)
		nested := make([][]float32, 3)
		for i := range nested {
			nested[i] = flat[16*i : 16*(i+1)]
		}
		r := postJSON(t, ts.URL+"/v2/models/mlp/infer", wireRequest{Inputs: []wireTensor{{Name: "x", Datatype: "FP32", Shape: x.Shape, Data: nested}}})
		res, _ := decodeResponse(t, r)
		wantJSONData(t, y, res.Outputs[0].Data)
	})
}

// typesInputs returns one input per input of types.onnx, two rows each,
// with the extremes of every element type.
func typesInputs() map[string]serving.Tensor {
	r2 := func(n int) []int64 { return []int64{2, int64(n)} }
	return map[string]serving.Tensor{
		"half": serving.NewTensor(r2(3), []serving.F16{serving.F16From(1.5), serving.F16From(-0.25), serving.F16From(65504),
			serving.F16From(0), serving.F16From(float32(math.Inf(-1))), serving.F16From(6.1035156e-05)}),
		"flag": serving.NewTensor(r2(2), []bool{true, false, false, true}),
		"f64":  serving.NewTensor(r2(2), []float64{math.Pi, -1e300, math.SmallestNonzeroFloat64, math.NaN()}),
		"i8":   serving.NewTensor(r2(2), []int8{math.MinInt8, -1, 0, math.MaxInt8}),
		"u8":   serving.NewTensor(r2(2), []uint8{0, 1, 128, math.MaxUint8}),
		"i16":  serving.NewTensor(r2(2), []int16{math.MinInt16, -2, 7, math.MaxInt16}),
		"u16":  serving.NewTensor(r2(2), []uint16{0, 2, 40000, math.MaxUint16}),
		"i32":  serving.NewTensor(r2(2), []int32{math.MinInt32, -3, 9, math.MaxInt32}),
		"u32":  serving.NewTensor(r2(2), []uint32{0, 3, 3_000_000_000, math.MaxUint32}),
		"i64":  serving.NewTensor(r2(2), []int64{math.MinInt64, -4, 1 << 60, math.MaxInt64}),
		"u64":  serving.NewTensor(r2(2), []uint64{0, 4, 1 << 63, math.MaxUint64}),
		"bf16": serving.NewTensor(r2(2), []serving.BF16{serving.BF16From(3.140625), serving.BF16From(-2), serving.BF16From(1e30), serving.BF16From(float32(math.Inf(1)))}),
		"str":  serving.NewTensor(r2(2), []string{"plain", "quote \" and \\ backslash\n", "unicode é ✓ 🙂", ""}),
	}
}

var typesOrder = []string{"half", "flag", "f64", "i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64", "bf16", "str"}

// Every datatype crosses the handler both ways, as JSON and as binary
// data, and comes back as the model answers it.
func TestEveryDatatype(t *testing.T) {
	m := load(t, "types")
	ts, _ := serve(t, oip.Models(map[string]serving.Model{"types": m}), oip.HandlerOptions{})
	in := typesInputs()
	want, err := m.Predict(context.Background(), in)
	require.NoError(t, err)

	var req wireRequest
	var tensors []serving.Tensor
	for _, n := range typesOrder {
		req.Inputs = append(req.Inputs, tensorInput(n, in[n]))
		tensors = append(tensors, in[n])
	}
	check := func(t *testing.T, res wireResponse, raws map[string][]byte, binary bool) {
		require.Len(t, res.Outputs, len(want))
		for _, o := range res.Outputs {
			w, ok := want[o.Name]
			require.True(t, ok, "unexpected output %q", o.Name)
			require.Equal(t, oip.Datatype(w.Tensor.ElementType()), o.Datatype, o.Name)
			require.Equal(t, w.Tensor.Shape, o.Shape, o.Name)
			if binary {
				require.Equal(t, rawBytes(w.Tensor), raws[o.Name], o.Name)
			} else {
				wantJSONData(t, w.Tensor, o.Data)
			}
		}
	}
	t.Run("json", func(t *testing.T) {
		res, raws := decodeResponse(t, postJSON(t, ts.URL+"/v2/models/types/infer", req))
		require.Empty(t, raws)
		check(t, res, raws, false)
	})
	t.Run("binary", func(t *testing.T) {
		body, hdr := binaryRequest(t, wireRequest{Parameters: map[string]any{"binary_data_output": true}, Inputs: append([]wireTensor(nil), req.Inputs...)}, tensors)
		res, raws := decodeResponse(t, do(t, http.MethodPost, ts.URL+"/v2/models/types/infer", hdr, body))
		check(t, res, raws, true)
	})
	// As Triton's clients send them: some inputs as binary data and the
	// rest as JSON in one request, some outputs asked for as binary data.
	t.Run("mixed", func(t *testing.T) {
		var mixed wireRequest
		var raw []byte
		for i, n := range typesOrder {
			wt := tensorInput(n, in[n])
			if i%2 == 0 {
				b := rawBytes(in[n])
				wt.Data, wt.Parameters = nil, map[string]any{"binary_data_size": len(b)}
				raw = append(raw, b...)
			}
			mixed.Inputs = append(mixed.Inputs, wt)
		}
		outputs := slices.Sorted(maps.Keys(want))
		binary := map[string]bool{}
		for i, n := range outputs {
			binary[n] = i%2 == 1
			mixed.Outputs = append(mixed.Outputs, wireTensor{Name: n, Parameters: map[string]any{"binary_data": binary[n]}})
		}
		js, err := json.Marshal(mixed)
		require.NoError(t, err)
		res, raws := decodeResponse(t, do(t, http.MethodPost, ts.URL+"/v2/models/types/infer",
			http.Header{oip.HeaderContentLength: {strconv.Itoa(len(js))}}, append(js, raw...)))
		require.Len(t, res.Outputs, len(outputs))
		for i, o := range res.Outputs {
			require.Equal(t, outputs[i], o.Name, "outputs in request order")
			w := want[o.Name].Tensor
			require.Equal(t, oip.Datatype(w.ElementType()), o.Datatype, o.Name)
			require.Equal(t, w.Shape, o.Shape, o.Name)
			if binary[o.Name] {
				require.Equal(t, rawBytes(w), raws[o.Name], o.Name)
			} else {
				require.NotContains(t, raws, o.Name)
				wantJSONData(t, w, o.Data)
			}
		}
	})
	t.Run("metadata", func(t *testing.T) {
		var md struct {
			Inputs []wireTensor `json:"inputs"`
		}
		require.NoError(t, json.Unmarshal(get(t, ts.URL+"/v2/models/types").body, &md))
		got := map[string]string{}
		for _, in := range md.Inputs {
			got[in.Name] = in.Datatype
		}
		require.Equal(t, map[string]string{"half": "FP16", "flag": "BOOL", "f64": "FP64", "i8": "INT8", "u8": "UINT8",
			"i16": "INT16", "u16": "UINT16", "i32": "INT32", "u32": "UINT32", "i64": "INT64", "u64": "UINT64",
			"bf16": "BF16", "str": "BYTES"}, got)
	})
}

// Requested outputs come in request order, each as JSON or binary data as
// asked; a request-wide binary_data_output yields to an output's own
// binary_data.
func TestRequestedOutputs(t *testing.T) {
	m := load(t, "multi_io")
	ts, _ := serve(t, oip.Models(map[string]serving.Model{"multi": m}), oip.HandlerOptions{})
	in := map[string]serving.Tensor{
		"a":   serving.NewTensor([]int64{2, 4}, []float32{1, -2, 3, -4, 0.5, 0, -0.5, 7}),
		"b":   serving.NewTensor([]int64{2, 4}, []float32{4, 3, 2, 1, -1, -2, -3, -4}),
		"ids": serving.NewTensor([]int64{2, 3}, []int64{1, 2, 3, -1, 1 << 40, 0}),
	}
	want, err := m.Predict(context.Background(), in)
	require.NoError(t, err)
	inputs := []wireTensor{tensorInput("a", in["a"]), tensorInput("b", in["b"]), tensorInput("ids", in["ids"])}

	res, raws := decodeResponse(t, postJSON(t, ts.URL+"/v2/models/multi/infer", wireRequest{Inputs: inputs,
		Outputs: []wireTensor{{Name: "positive"}, {Name: "sum", Parameters: map[string]any{"binary_data": true}}}}))
	require.Len(t, res.Outputs, 2)
	require.Equal(t, "positive", res.Outputs[0].Name)
	require.Equal(t, "BOOL", res.Outputs[0].Datatype)
	wantJSONData(t, want["positive"].Tensor, res.Outputs[0].Data)
	require.Equal(t, "sum", res.Outputs[1].Name)
	require.Equal(t, rawBytes(want["sum"].Tensor), raws["sum"])

	res, raws = decodeResponse(t, postJSON(t, ts.URL+"/v2/models/multi/infer", wireRequest{Inputs: inputs,
		Parameters: map[string]any{"binary_data_output": true},
		Outputs:    []wireTensor{{Name: "ids_next"}, {Name: "prod", Parameters: map[string]any{"binary_data": false}}}}))
	require.Len(t, res.Outputs, 2)
	require.Equal(t, rawBytes(want["ids_next"].Tensor), raws["ids_next"])
	require.Equal(t, "prod", res.Outputs[1].Name)
	wantJSONData(t, want["prod"].Tensor, res.Outputs[1].Data)

	// All outputs by default, in the model's order.
	res, _ = decodeResponse(t, postJSON(t, ts.URL+"/v2/models/multi/infer", wireRequest{Inputs: inputs}))
	var names []string
	for _, o := range res.Outputs {
		names = append(names, o.Name)
	}
	require.Equal(t, []string{"sum", "prod", "ids_next", "positive"}, names)
}

// Bad requests get the right status and a message that says what was
// wrong and what was expected; the handler keeps serving.
func TestBadRequests(t *testing.T) {
	m := load(t, "mlp")
	seqModel := load(t, "sequence")
	ts, _ := serve(t, oip.Models(map[string]serving.Model{"mlp": m, "seq": seqModel}), oip.HandlerOptions{MaxBodyBytes: 4096})
	x := tensorInput("x", serving.NewTensor([]int64{1, 16}, seq(16, 1)))
	url := ts.URL + "/v2/models/mlp/infer"

	cases := []struct {
		name   string
		url    string
		header http.Header
		body   string
		status int
		msg    string
		bin    string // binary data after body; the header length is set to len(body)
	}{
		{"not json", url, nil, `{"inputs": [`, 400, "not an inference request object", ""},
		{"empty", url, nil, ``, 400, "the body is empty", ""},
		{"no inputs", url, nil, `{"inputs": []}`, 400, "no inputs", ""},
		{"datatype", url, nil, `{"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FLOAT", "data": [1]}]}`, 400, `datatype "FLOAT" is not one of BOOL`, ""},
		{"wrong datatype", url, nil, `{"inputs": [{"name": "x", "shape": [1, 16], "datatype": "FP64", "data": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}]}`, 400, "got datatype FP64, want datatype FP32", ""},
		{"count", url, nil, `{"inputs": [{"name": "x", "shape": [2, 16], "datatype": "FP32", "data": [1, 2, 3]}]}`, 400, "data holds 3 elements, shape [2 16] needs 32", ""},
		{"negative dim", url, nil, `{"inputs": [{"name": "x", "shape": [-1, 16], "datatype": "FP32", "data": [1]}]}`, 400, "negative dimension", ""},
		{"huge shape", url, nil, `{"inputs": [{"name": "x", "shape": [4294967296, 4294967296], "datatype": "FP32", "data": [1]}]}`, 400, "data holds 1 elements, shape [4294967296 4294967296] needs more than 2^63", ""},
		{"no shape", url, nil, `{"inputs": [{"name": "x", "datatype": "FP32", "data": [1]}]}`, 400, `input "x" has no shape`, ""},
		{"no data", url, nil, `{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}]}`, 400, "has no data and no parameters.binary_data_size", ""},
		{"string for number", url, nil, `{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": ["1.5"]}]}`, 400, `element 0 is "1.5"; want an FP32 number`, ""},
		{"out of range", url, nil, `{"inputs": [{"name": "x", "shape": [1], "datatype": "INT8", "data": [300]}]}`, 400, "element 0 is 300; want an INT8 integer", ""},
		{"fraction for int", url, nil, `{"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [1.5]}]}`, 400, "element 0 is 1.5; want an INT64 integer", ""},
		{"object in data", url, nil, `{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [{"a": 1}]}]}`, 400, "data holds an object", ""},
		{"fp32 overflow", url, nil, `{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1e39]}]}`, 400, "want an FP32 number", ""},
		{"shape type", url, nil, `{"inputs": [{"name": "x", "shape": "1", "datatype": "FP32", "data": [1]}]}`, 400, "inputs.shape is a JSON string; want an array of integers", ""},
		{"duplicate input", url, nil, `{"inputs": [` + jsonOf(t, x) + `,` + jsonOf(t, x) + `]}`, 400, `input "x" appears twice`, ""},
		{"unknown input", url, nil, `{"inputs": [` + jsonOf(t, x) + `, {"name": "z", "shape": [1], "datatype": "FP32", "data": [1]}]}`, 400, `"z"`, ""},
		{"missing input", url, nil, `{"inputs": [{"name": "z", "shape": [1, 16], "datatype": "FP32", "data": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}]}`, 400, `"x"`, ""},
		{"model shape", url, nil, `{"inputs": [{"name": "x", "shape": [2, 8], "datatype": "FP32", "data": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}]}`, 400, "[2 8]", ""},
		{"unknown output", url, nil, `{"inputs": [` + jsonOf(t, x) + `], "outputs": [{"name": "w"}]}`, 400, `requested output "w" does not exist; the outputs are "y"`, ""},
		{"output twice", url, nil, `{"inputs": [` + jsonOf(t, x) + `], "outputs": [{"name": "y"}, {"name": "y"}]}`, 400, `output "y" is requested twice`, ""},
		{"sequence output", ts.URL + "/v2/models/seq/infer", nil, `{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}], "outputs": [{"name": "parts"}]}`, 400, `"parts" is a sequence; the protocol carries tensors only`, ""},
		{"classification", url, nil, `{"inputs": [` + jsonOf(t, x) + `], "outputs": [{"name": "y", "parameters": {"classification": 2}}]}`, 400, "classification", ""},
		{"binary without header", url, nil, `{"inputs": [{"name": "x", "shape": [1, 16], "datatype": "FP32", "parameters": {"binary_data_size": 64}}]}`, 400, "no Inference-Header-Content-Length header", ""},
		{"header too long", url, http.Header{oip.HeaderContentLength: {"9999"}}, `{}`, 400, "Inference-Header-Content-Length is 9999, but the body has only 2 bytes", ""},
		{"header not a number", url, http.Header{oip.HeaderContentLength: {"x"}}, `{}`, 400, `Inference-Header-Content-Length is "x"`, ""},
		{name: "binary short", url: url, body: `{"inputs": [{"name": "x", "shape": [1, 16], "datatype": "FP32", "parameters": {"binary_data_size": 64}}]}`, bin: strings.Repeat("\x00", 60), status: 400, msg: "binary_data_size 64, but 60 bytes of binary data are left"},
		{name: "binary size vs shape", url: url, body: `{"inputs": [{"name": "x", "shape": [1, 16], "datatype": "FP32", "parameters": {"binary_data_size": 60}}]}`, bin: strings.Repeat("\x00", 60), status: 400, msg: "FP32 shape [1 16] needs 64 bytes, got 60"},
		{name: "binary extra", url: url, body: `{"inputs": [{"name": "x", "shape": [1, 16], "datatype": "FP32", "parameters": {"binary_data_size": 64}}]}`, bin: strings.Repeat("\x00", 70), status: 400, msg: "6 bytes of binary data follow"},
		{name: "binary and data", url: url, body: `{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1], "parameters": {"binary_data_size": 4}}]}`, bin: "\x00\x00\x00\x00", status: 400, msg: "both data and parameters.binary_data_size"},
		{name: "bytes length past end", url: url, body: `{"inputs": [{"name": "s", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 8}}]}`, bin: "\x09\x00\x00\x00abcd", status: 400, msg: "BYTES element 0 of 1: length 9, but 4 bytes left"},
		{name: "bool byte", url: url, body: `{"inputs": [{"name": "b", "shape": [2], "datatype": "BOOL", "parameters": {"binary_data_size": 2}}]}`, bin: "\x01\x02", status: 400, msg: "BOOL element 1 is byte 2; want 0 or 1"},
		{"too large", url, nil, `{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [` + strings.Repeat("1,", 3000) + `1]}]}`, 413, "request body too large: 6", ""}, // 6xxx bytes; the limit is 4096
		{"gzip", url, http.Header{"Content-Encoding": {"gzip"}}, `{}`, 415, `Content-Encoding "gzip"`, ""},
		{"unknown model", ts.URL + "/v2/models/nope/infer", nil, `{"inputs": [` + jsonOf(t, x) + `]}`, 404, `"nope" is not served`, ""},
		{"version of unversioned", ts.URL + "/v2/models/mlp/versions/1/infer", nil, `{"inputs": [` + jsonOf(t, x) + `]}`, 404, "not versioned", ""},
		// A client that names the wrong model learns that first, whatever
		// its body.
		{"unknown model, bad body", ts.URL + "/v2/models/nope/infer", nil, `{}`, 404, `"nope" is not served`, ""},
		{"unknown version, bad body", ts.URL + "/v2/models/mlp/versions/1/infer", nil, `{"inputs": 1}`, 404, "not versioned", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hdr := http.Header{"Content-Type": {"application/json"}}
			for k, v := range c.header {
				hdr[k] = v
			}
			if c.bin != "" {
				hdr.Set(oip.HeaderContentLength, fmt.Sprint(len(c.body)))
			}
			r := do(t, http.MethodPost, c.url, hdr, []byte(c.body+c.bin))
			require.Equal(t, c.status, r.status, "body %s", r.body)
			require.Contains(t, errorOf(t, r), c.msg)
		})
	}

	// Still serving.
	res, _ := decodeResponse(t, postJSON(t, url, wireRequest{Inputs: []wireTensor{x}}))
	require.Len(t, res.Outputs, 1)
}

func jsonOf(t testing.TB, v any) string {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// The limit holds for a body sent without Content-Length (chunked), too.
func TestBodyLimitChunked(t *testing.T) {
	m := load(t, "mlp")
	ts, _ := serve(t, oip.Models(map[string]serving.Model{"mlp": m}), oip.HandlerOptions{MaxBodyBytes: 1000})
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(`{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [`))
		for range 1000 {
			if _, err := pw.Write([]byte("1,")); err != nil {
				return
			}
		}
		pw.Write([]byte(`1]}]}`))
		pw.Close()
	}()
	req, err := http.NewRequest(http.MethodPost, ts.URL+"/v2/models/mlp/infer", pr)
	require.NoError(t, err)
	req.ContentLength = -1 // sent chunked
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	pr.Close()
}

// A body that stops arriving is answered 504 once the timeout passes.
func TestSlowBody(t *testing.T) {
	m := load(t, "mlp")
	ts, h := serve(t, oip.Models(map[string]serving.Model{"mlp": m}), oip.HandlerOptions{Timeout: 200 * time.Millisecond})
	r := postStalled(t, ts.URL+"/v2/models/mlp/infer", `{"inputs": [{"name": "x", "shape": [1, 16], "datatype": "FP32", "data": [1, 2,`)
	require.Equal(t, http.StatusGatewayTimeout, r.status, "body %s", r.body)
	require.Contains(t, string(r.body), "reading the request body: no end within 200ms")
	require.Equal(t, uint64(1), h.Stats().Requests[oip.RequestKey{Endpoint: oip.EndpointInfer, Code: "504"}])

	// Still serving.
	res, _ := decodeResponse(t, postJSON(t, ts.URL+"/v2/models/mlp/infer", wireRequest{Inputs: []wireTensor{tensorInput("x", serving.NewTensor([]int64{1, 16}, seq(16, 1)))}}))
	require.Len(t, res.Outputs, 1)
}

// An http.Server's ReadTimeout tighter than the handler's Timeout keeps
// bounding the body: the handler does not loosen it. Once the body is in,
// it no longer bounds the run, which the handler's Timeout does.
func TestServerReadTimeout(t *testing.T) {
	const readTimeout = 200 * time.Millisecond
	slow := &servingtest.Doubler{Cost: servingtest.LinearCost(2*readTimeout, 0)}
	h := oip.NewHandler(oip.Models(map[string]serving.Model{"slow": slow}), oip.HandlerOptions{Timeout: time.Minute})
	ts := httptest.NewUnstartedServer(h)
	ts.Config.ReadTimeout = readTimeout
	ts.Start()
	t.Cleanup(ts.Close)
	url := ts.URL + "/v2/models/slow/infer"

	t.Run("body", func(t *testing.T) {
		// The client gives up after 20s, far below the handler's minute:
		// only the server's ReadTimeout can answer in time.
		r := postStalled(t, url, `{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1,`)
		require.Equal(t, http.StatusGatewayTimeout, r.status, "body %s", r.body)
		require.Contains(t, string(r.body), "reading the request body: no end within the server's ReadTimeout 200ms")
	})
	t.Run("run", func(t *testing.T) {
		r := postJSON(t, url, wireRequest{Inputs: []wireTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 2}, Data: []float32{1, 2}}}})
		res, _ := decodeResponse(t, r)
		require.Len(t, res.Outputs, 1)
		wantJSONData(t, serving.NewTensor([]int64{1, 2}, []float32{2, 4}), res.Outputs[0].Data)
	})
}

// Overload, closed models and timeouts answer 503 and 504, and a client
// that goes away ends its wait.
func TestUnavailableAndTimeout(t *testing.T) {
	gate := make(chan struct{})
	entered := make(chan struct{}, 16)
	fake := &servingtest.Doubler{Gate: gate, Entered: entered}
	b, err := serving.NewBatcher(fake, serving.BatcherOptions{MaxBatchSize: 1, MaxInFlight: 1, MaxQueueLength: 1, MaxQueueDelay: -1})
	require.NoError(t, err)
	closed, err := serving.NewBatcher(&servingtest.Doubler{}, serving.BatcherOptions{})
	require.NoError(t, err)
	require.NoError(t, closed.Close())
	repo := oip.Models(map[string]serving.Model{"slow": b, "closed": closed})
	patient, hp := serve(t, repo, oip.HandlerOptions{})
	hasty, hh := serve(t, repo, oip.HandlerOptions{Timeout: 200 * time.Millisecond})
	body := wireRequest{Inputs: []wireTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 2}, Data: []float32{1, 2}}}}

	r := postJSON(t, hasty.URL+"/v2/models/closed/infer", body)
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	require.Contains(t, errorOf(t, r), "closed")

	// One request runs, held at the gate; one waits in the queue and runs
	// out of time; a third finds the queue full.
	bodyJSON := jsonOf(t, body)
	first := make(chan answer, 1)
	go func() { first <- tryPost(patient.URL+"/v2/models/slow/infer", bodyJSON) }()
	<-entered
	second := make(chan answer, 1)
	go func() { second <- tryPost(hasty.URL+"/v2/models/slow/infer", bodyJSON) }()
	require.Eventually(t, func() bool { return b.Stats().QueueLength == 1 }, 5*time.Second, time.Millisecond)
	r = postJSON(t, hasty.URL+"/v2/models/slow/infer", body)
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	require.Contains(t, errorOf(t, r), "overloaded")
	r = (<-second).get(t)
	require.Equal(t, http.StatusGatewayTimeout, r.status, "body %s", r.body)
	require.Contains(t, errorOf(t, r), "no answer before the deadline (timeout 200ms)")

	// A client that gives up while queued is dropped at once.
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, patient.URL+"/v2/models/slow/infer", strings.NewReader(bodyJSON))
		_, err := http.DefaultClient.Do(req)
		gone <- err
	}()
	require.Eventually(t, func() bool { return b.Stats().QueueLength == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, <-gone, context.Canceled)
	require.Eventually(t, func() bool {
		return hp.Stats().Requests[oip.RequestKey{Endpoint: oip.EndpointInfer, Code: "499"}] == 1
	}, 5*time.Second, time.Millisecond)
	require.Zero(t, b.Stats().QueueLength)

	close(gate)
	r = (<-first).get(t)
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	st := hh.Stats()
	require.Equal(t, uint64(2), st.Requests[oip.RequestKey{Endpoint: oip.EndpointInfer, Code: "503"}])
	require.Equal(t, uint64(1), st.Requests[oip.RequestKey{Endpoint: oip.EndpointInfer, Code: "504"}])
	require.Equal(t, uint64(1), hp.Stats().Requests[oip.RequestKey{Endpoint: oip.EndpointInfer, Code: "200"}])
	require.NoError(t, b.Close())
}

// Concurrent clients through a Batcher each get their own rows' answer.
func TestConcurrentClients(t *testing.T) {
	m := load(t, "mlp")
	b, err := serving.NewBatcher(m, serving.BatcherOptions{KeepModelOpen: true, MaxQueueDelay: time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	ts, _ := serve(t, oip.Models(map[string]serving.Model{"mlp": b}), oip.HandlerOptions{})

	const clients, each = 16, 8
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				for i := range each {
					x := serving.NewTensor([]int64{1, 16}, seq(16, float32(c*each+i+1)/50))
					want, err := m.Predict(context.Background(), map[string]serving.Tensor{"x": x})
					if err != nil {
						return err
					}
					body, _ := json.Marshal(wireRequest{Inputs: []wireTensor{tensorInput("x", x)}, Parameters: map[string]any{"binary_data_output": true}})
					resp, err := http.Post(ts.URL+"/v2/models/mlp/infer", "application/json", strings.NewReader(string(body)))
					if err != nil {
						return err
					}
					r := response{status: resp.StatusCode, header: resp.Header}
					r.body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil {
						return err
					}
					if r.status != http.StatusOK {
						return fmt.Errorf("status %d: %s", r.status, r.body)
					}
					n := len(r.body) - 16
					if got, w := string(r.body[n:]), string(rawBytes(want["y"].Tensor)); got != w {
						return fmt.Errorf("client %d request %d: answer differs from the model's", c, i)
					}
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, uint64(clients*each), b.Stats().Requests)
}

// failing is a model that fails every run with err; with no inputs and
// outputs described, it reads as not loaded yet.
type failing struct {
	err       error
	described bool
}

func (f failing) Info() serving.Info {
	if !f.described {
		return serving.Info{Name: "failing"}
	}
	return serving.Info{Name: "failing",
		Inputs:  []serving.IOInfo{{Name: "x", Kind: serving.KindTensor, ElementType: serving.Float32, Shape: []int64{-1, 2}}},
		Outputs: []serving.IOInfo{{Name: "y", Kind: serving.KindTensor, ElementType: serving.Float32, Shape: []int64{-1, 2}}}}
}

func (f failing) Predict(context.Context, map[string]serving.Tensor) (map[string]serving.Value, error) {
	return nil, f.err
}

func (f failing) Close() error { return nil }

// A model's failures answer the same status over REST and gRPC: not ready
// and overloaded are 503 / Unavailable (retry later), anything else 500 /
// Internal; a model that is not loaded yet makes it and the server not
// ready.
func TestModelFailureStatuses(t *testing.T) {
	repo := oip.Models(map[string]serving.Model{
		"loading":    failing{err: fmt.Errorf("warming up: %w", serving.ErrNotReady)},
		"overloaded": failing{err: fmt.Errorf("queue full: %w", serving.ErrOverloaded), described: true},
		"broken":     failing{err: errors.New("kernel exploded"), described: true},
	})
	quiet := slog.New(slog.DiscardHandler)
	ts, h := serve(t, repo, oip.HandlerOptions{Logger: quiet})
	client, g := serveGRPC(t, repo, oip.GRPCOptions{Logger: quiet})
	body := wireRequest{Inputs: []wireTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 2}, Data: []float32{1, 2}}}}

	for _, c := range []struct {
		model  string
		status int
		code   codes.Code
		msg    string
	}{
		{"loading", http.StatusServiceUnavailable, codes.Unavailable, "warming up"},
		{"overloaded", http.StatusServiceUnavailable, codes.Unavailable, "queue full"},
		{"broken", http.StatusInternalServerError, codes.Internal, "kernel exploded"},
	} {
		r := postJSON(t, ts.URL+"/v2/models/"+c.model+"/infer", body)
		require.Equal(t, c.status, r.status, "%s: body %s", c.model, r.body)
		require.Contains(t, errorOf(t, r), c.msg)
		_, err := client.ModelInfer(context.Background(), &pb.ModelInferRequest{ModelName: c.model,
			Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 2},
				Contents: &pb.InferTensorContents{Fp32Contents: []float32{1, 2}}}}})
		requireCode(t, err, c.code, c.msg)
	}
	require.Equal(t, uint64(2), h.Stats().Requests[oip.RequestKey{Endpoint: oip.EndpointInfer, Code: "503"}])
	require.Equal(t, uint64(1), h.Stats().Requests[oip.RequestKey{Endpoint: oip.EndpointInfer, Code: "500"}])
	require.Equal(t, uint64(1), g.Stats().Requests[oip.RequestKey{Endpoint: oip.EndpointInfer, Code: "Internal"}])

	r := get(t, ts.URL+"/v2/models/loading/ready")
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	require.JSONEq(t, `{"name": "loading", "ready": false}`, string(r.body))
	require.Equal(t, http.StatusOK, get(t, ts.URL+"/v2/models/broken/ready").status)
	r = get(t, ts.URL+"/v2/health/ready")
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	require.JSONEq(t, `{"ready": false}`, string(r.body))
	mr, err := client.ModelReady(context.Background(), &pb.ModelReadyRequest{Name: "loading"})
	require.NoError(t, err)
	require.False(t, mr.Ready)
	sr, err := client.ServerReady(context.Background(), &pb.ServerReadyRequest{})
	require.NoError(t, err)
	require.False(t, sr.Ready)
}
