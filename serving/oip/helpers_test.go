package oip_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/oip"
	"github.com/quiverml/quiver/serving/onnx"
	"github.com/quiverml/quiver/serving/servingtest"
)

func TestMain(m *testing.M) {
	if os.Getenv("ONNXRUNTIME_LIB") == "" {
		if p, err := filepath.Abs(filepath.Join("..", "..", "third_party", "onnxruntime", "libonnxruntime.so.1.30.0")); err == nil {
			if _, err := os.Stat(p); err == nil {
				os.Setenv("ONNXRUNTIME_LIB", p)
			}
		}
	}
	os.Exit(m.Run())
}

// load opens a committed test model on ONNX Runtime.
func load(t testing.TB, name string) *onnx.Model {
	t.Helper()
	m, err := onnx.Load(context.Background(), servingtest.ModelPath(name), onnx.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// serve starts the REST handler over repo on a loopback listener.
func serve(t testing.TB, repo oip.Repository, opts oip.HandlerOptions) (*httptest.Server, *oip.Handler) {
	t.Helper()
	h := oip.NewHandler(repo, opts)
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts, h
}

// response is an HTTP answer, read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t testing.TB, method, url string, header http.Header, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{resp.StatusCode, resp.Header, b}
}

func get(t testing.TB, url string) response { return do(t, http.MethodGet, url, nil, nil) }

// answer is a response or the error that stopped it, for requests made off
// the test's goroutine, where nothing may fail the test.
type answer struct {
	r   response
	err error
}

// get fails the test if the request failed; call it on the test goroutine.
func (a answer) get(t testing.TB) response {
	t.Helper()
	require.NoError(t, a.err)
	return a.r
}

// postStalled posts a body that sends start and then nothing more until
// the answer has come, and returns the answer; the client gives up after
// 20 seconds.
func postStalled(t testing.TB, url, start string) response {
	t.Helper()
	pr, pw := io.Pipe()
	answered := make(chan struct{})
	go func() {
		pw.Write([]byte(start))
		<-answered
		pw.CloseWithError(io.ErrUnexpectedEOF)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, pr)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	close(answered)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{resp.StatusCode, resp.Header, b}
}

// tryPost posts a JSON body and reads the whole answer, reporting failure
// instead of failing the test, so that any goroutine may call it.
func tryPost(url, body string) answer {
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{response{resp.StatusCode, resp.Header, b}, err}
}

func postJSON(t testing.TB, url string, v any) response {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return do(t, http.MethodPost, url, http.Header{"Content-Type": {"application/json"}}, b)
}

// errorOf returns the message of a JSON error answer.
func errorOf(t testing.TB, r response) string {
	t.Helper()
	require.Equal(t, "application/json", r.header.Get("Content-Type"), "body %s", r.body)
	var e struct {
		Error string `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&e), "body %s", r.body)
	require.NotEmpty(t, e.Error)
	return e.Error
}

// Wire types of the protocol as a client decodes them, written apart from
// the package's encoder so that tests check it against the specification.
type wireTensor struct {
	Name       string         `json:"name"`
	Datatype   string         `json:"datatype"`
	Shape      []int64        `json:"shape"`
	Parameters map[string]any `json:"parameters,omitempty"`
	Data       any            `json:"data,omitempty"`
}

type wireRequest struct {
	ID         string         `json:"id,omitempty"`
	Parameters map[string]any `json:"parameters,omitempty"`
	Inputs     []wireTensor   `json:"inputs"`
	Outputs    []wireTensor   `json:"outputs,omitempty"`
}

type wireResponse struct {
	ModelName    string       `json:"model_name"`
	ModelVersion string       `json:"model_version"`
	ID           string       `json:"id"`
	Outputs      []wireTensor `json:"outputs"`
}

// decodeResponse decodes an answer, JSON or binary, into its JSON part
// (numbers kept as json.Number) and each binary output's bytes by name.
func decodeResponse(t testing.TB, r response) (wireResponse, map[string][]byte) {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	jsonPart := r.body
	var rest []byte
	if hl := r.header.Get(oip.HeaderContentLength); hl != "" {
		require.Equal(t, "application/octet-stream", r.header.Get("Content-Type"))
		n, err := strconv.Atoi(hl)
		require.NoError(t, err)
		require.LessOrEqual(t, n, len(r.body))
		jsonPart, rest = r.body[:n], r.body[n:]
	} else {
		require.Equal(t, "application/json", r.header.Get("Content-Type"))
	}
	var res wireResponse
	dec := json.NewDecoder(bytes.NewReader(jsonPart))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&res), "body %s", jsonPart)
	raws := map[string][]byte{}
	for _, o := range res.Outputs {
		size, ok := o.Parameters["binary_data_size"]
		if !ok {
			continue
		}
		require.Nil(t, o.Data, "binary output %q has data too", o.Name)
		n, err := size.(json.Number).Int64()
		require.NoError(t, err)
		require.LessOrEqual(t, n, int64(len(rest)))
		raws[o.Name], rest = rest[:n], rest[n:]
	}
	require.Empty(t, rest, "bytes after the binary outputs")
	return res, raws
}

// jsonData renders a tensor's elements as a client writes them: a flat
// array, with NaN and infinities as strings.
func jsonData(t serving.Tensor) []any {
	var out []any
	add := func(v any) { out = append(out, v) }
	float := func(f float64) any {
		switch {
		case math.IsNaN(f):
			return "NaN"
		case math.IsInf(f, 1):
			return "Infinity"
		case math.IsInf(f, -1):
			return "-Infinity"
		}
		return f
	}
	switch d := t.Data.(type) {
	case []float32:
		for _, v := range d {
			add(float(float64(v)))
		}
	case []float64:
		for _, v := range d {
			add(float(v))
		}
	case []serving.F16:
		for _, v := range d {
			add(float(float64(v.Float32())))
		}
	case []serving.BF16:
		for _, v := range d {
			add(float(float64(v.Float32())))
		}
	case []bool:
		for _, v := range d {
			add(v)
		}
	case []string:
		for _, v := range d {
			add(v)
		}
	case []int8:
		for _, v := range d {
			add(v)
		}
	case []int16:
		for _, v := range d {
			add(v)
		}
	case []int32:
		for _, v := range d {
			add(v)
		}
	case []int64:
		for _, v := range d {
			add(v)
		}
	case []uint8:
		for _, v := range d {
			add(v)
		}
	case []uint16:
		for _, v := range d {
			add(v)
		}
	case []uint32:
		for _, v := range d {
			add(v)
		}
	case []uint64:
		for _, v := range d {
			add(v)
		}
	default:
		panic("unhandled element type")
	}
	return out
}

// rawBytes encodes a tensor in the raw layout of the specification, apart
// from the package's encoder.
func rawBytes(t serving.Tensor) []byte {
	var b bytes.Buffer
	if s, ok := t.Data.([]string); ok {
		for _, e := range s {
			binary.Write(&b, binary.LittleEndian, uint32(len(e)))
			b.WriteString(e)
		}
		return b.Bytes()
	}
	if err := binary.Write(&b, binary.LittleEndian, t.Data); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// wantJSONData checks an answer's JSON data against a tensor, element by
// element, exactly: floats must read back to the same bits.
func wantJSONData(t testing.TB, want serving.Tensor, got any) {
	t.Helper()
	arr, ok := got.([]any)
	require.True(t, ok, "data is %T, want a flat array", got)
	require.Len(t, arr, want.Len())
	float := func(i int, bits int) float64 {
		switch v := arr[i].(type) {
		case string:
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err, "element %d", i)
			require.True(t, math.IsNaN(f) || math.IsInf(f, 0), "element %d: finite number %q as a string", i, v)
			return f
		case json.Number:
			f, err := strconv.ParseFloat(string(v), bits)
			require.NoError(t, err, "element %d", i)
			return f
		}
		t.Fatalf("element %d is %T, want a number", i, arr[i])
		return 0
	}
	sameFloat := func(i int, w, g float64) {
		if math.IsNaN(w) {
			require.True(t, math.IsNaN(g), "element %d: got %v, want NaN", i, g)
			return
		}
		require.Equal(t, w, g, "element %d", i)
	}
	integer := func(i int) string {
		n, ok := arr[i].(json.Number)
		require.True(t, ok, "element %d is %T, want a number", i, arr[i])
		return string(n)
	}
	switch d := want.Data.(type) {
	case []float32:
		for i, v := range d {
			sameFloat(i, float64(v), float(i, 32))
		}
	case []float64:
		for i, v := range d {
			sameFloat(i, v, float(i, 64))
		}
	case []serving.F16:
		for i, v := range d {
			require.Equal(t, v, serving.F16From(float32(float(i, 32))), "element %d", i)
		}
	case []serving.BF16:
		for i, v := range d {
			require.Equal(t, v, serving.BF16From(float32(float(i, 32))), "element %d", i)
		}
	case []bool:
		for i, v := range d {
			require.Equal(t, v, arr[i], "element %d", i)
		}
	case []string:
		for i, v := range d {
			require.Equal(t, v, arr[i], "element %d", i)
		}
	case []int8:
		for i, v := range d {
			require.Equal(t, strconv.FormatInt(int64(v), 10), integer(i))
		}
	case []int16:
		for i, v := range d {
			require.Equal(t, strconv.FormatInt(int64(v), 10), integer(i))
		}
	case []int32:
		for i, v := range d {
			require.Equal(t, strconv.FormatInt(int64(v), 10), integer(i))
		}
	case []int64:
		for i, v := range d {
			require.Equal(t, strconv.FormatInt(v, 10), integer(i))
		}
	case []uint8:
		for i, v := range d {
			require.Equal(t, strconv.FormatUint(uint64(v), 10), integer(i))
		}
	case []uint16:
		for i, v := range d {
			require.Equal(t, strconv.FormatUint(uint64(v), 10), integer(i))
		}
	case []uint32:
		for i, v := range d {
			require.Equal(t, strconv.FormatUint(uint64(v), 10), integer(i))
		}
	case []uint64:
		for i, v := range d {
			require.Equal(t, strconv.FormatUint(v, 10), integer(i))
		}
	default:
		t.Fatalf("unhandled element type %T", want.Data)
	}
}

// tensorInput renders a tensor as a JSON request input.
func tensorInput(name string, t serving.Tensor) wireTensor {
	return wireTensor{Name: name, Datatype: oip.Datatype(t.ElementType()), Shape: t.Shape, Data: jsonData(t)}
}

// binaryRequest builds a request body with every input as binary data, and
// its header.
func binaryRequest(t testing.TB, req wireRequest, inputs []serving.Tensor) ([]byte, http.Header) {
	t.Helper()
	var raw []byte
	for i := range req.Inputs {
		b := rawBytes(inputs[i])
		req.Inputs[i].Data = nil
		req.Inputs[i].Parameters = map[string]any{"binary_data_size": len(b)}
		raw = append(raw, b...)
	}
	js, err := json.Marshal(req)
	require.NoError(t, err)
	return append(js, raw...), http.Header{oip.HeaderContentLength: {strconv.Itoa(len(js))}}
}
