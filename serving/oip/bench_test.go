package oip_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/oip"
)

// BenchmarkOIP measures rows per second through the REST handler on a real
// loopback listener, 64 concurrent clients each sending single-row
// requests to bench_mlp.onnx (64 -> 256 -> 256 -> 1) behind a Batcher, as
// JSON and as binary tensor data, against the same 64 clients calling the
// Batcher in process. The clients run in the benchmark's process, so
// their encoding and HTTP costs count too, as they would on one machine;
// allocs/op counts both sides.
func BenchmarkOIP(b *testing.B) {
	const clients = 64
	m := load(b, "bench_mlp")
	bt, err := serving.NewBatcher(m, serving.BatcherOptions{KeepModelOpen: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bt.Close() })
	h := oip.NewHandler(oip.Models(map[string]serving.Model{"mlp": bt}), oip.HandlerOptions{})
	ts := httptest.NewServer(h)
	b.Cleanup(ts.Close)
	tr := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	url := ts.URL + "/v2/models/mlp/infer"

	row := func(c int) serving.Tensor {
		x := make([]float32, 64)
		for i := range x {
			x[i] = float32((c*7+i)%13-6) / 6
		}
		return serving.NewTensor([]int64{1, 64}, x)
	}
	jsonBody := func(c int) ([]byte, http.Header) {
		body, _ := json.Marshal(wireRequest{Inputs: []wireTensor{tensorInput("x", row(c))}})
		return body, http.Header{"Content-Type": {"application/json"}}
	}
	binaryBody := func(c int) ([]byte, http.Header) {
		head, _ := json.Marshal(wireRequest{Parameters: map[string]any{"binary_data_output": true},
			Inputs: []wireTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 64}, Parameters: map[string]any{"binary_data_size": 256}}}})
		return append(head, rawBytes(row(c))...), http.Header{"Content-Type": {"application/octet-stream"},
			oip.HeaderContentLength: {strconv.Itoa(len(head))}}
	}
	post := func(body []byte, hdr http.Header) error {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header = hdr.Clone()
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || n == 0 {
			return fmt.Errorf("status %d, %d bytes", resp.StatusCode, n)
		}
		return nil
	}
	// run spreads b.N requests over the clients.
	run := func(b *testing.B, each func(c int) func() error) {
		b.ReportAllocs()
		fns := make([]func() error, clients)
		for c := range fns {
			fns[c] = each(c)
			if err := fns[c](); err != nil { // warm the connection
				b.Fatal(err)
			}
		}
		var next atomic.Int64
		errs := make(chan error, clients)
		var wg sync.WaitGroup
		b.ResetTimer()
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(b.N) {
					if err := fns[c](); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		b.StopTimer()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	}

	b.Run("encoding=inprocess", func(b *testing.B) {
		run(b, func(c int) func() error {
			in := map[string]serving.Tensor{"x": row(c)}
			return func() error {
				_, err := bt.Predict(context.Background(), in)
				return err
			}
		})
	})
	b.Run("encoding=json", func(b *testing.B) {
		run(b, func(c int) func() error {
			body, hdr := jsonBody(c)
			return func() error { return post(body, hdr) }
		})
	})
	b.Run("encoding=binary", func(b *testing.B) {
		run(b, func(c int) func() error {
			body, hdr := binaryBody(c)
			return func() error { return post(body, hdr) }
		})
	})
}

// BenchmarkHandler measures what the handler adds to a model run, without
// a network: one single-row request to bench_mlp.onnx at a time through
// ServeHTTP with a recorder, as JSON and as binary tensor data, against
// calling the model directly.
func BenchmarkHandler(b *testing.B) {
	m := load(b, "bench_mlp")
	h := oip.NewHandler(oip.Models(map[string]serving.Model{"mlp": m}), oip.HandlerOptions{})
	x := serving.NewTensor([]int64{1, 64}, seq(64, 0.1))
	jsonBody, _ := json.Marshal(wireRequest{Inputs: []wireTensor{tensorInput("x", x)}})
	head, _ := json.Marshal(wireRequest{Parameters: map[string]any{"binary_data_output": true},
		Inputs: []wireTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 64}, Parameters: map[string]any{"binary_data_size": 256}}}})
	binBody := append(head, rawBytes(x)...)
	serve := func(b *testing.B, body []byte, hdr http.Header) {
		b.ReportAllocs()
		for b.Loop() {
			req := httptest.NewRequest(http.MethodPost, "/v2/models/mlp/infer", bytes.NewReader(body))
			for k, v := range hdr {
				req.Header[k] = v
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	}
	b.Run("encoding=direct", func(b *testing.B) {
		b.ReportAllocs()
		in := map[string]serving.Tensor{"x": x}
		for b.Loop() {
			if _, err := m.Predict(context.Background(), in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding=json", func(b *testing.B) { serve(b, jsonBody, nil) })
	b.Run("encoding=binary", func(b *testing.B) {
		serve(b, binBody, http.Header{oip.HeaderContentLength: {strconv.Itoa(len(head))}})
	})
}
