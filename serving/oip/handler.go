package oip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quiverml/quiver/serving"
)

// HandlerOptions configure NewHandler. The zero value gives the defaults
// documented on each field.
type HandlerOptions struct {
	// MaxBodyBytes is the largest request body accepted; a larger one is
	// answered 413 without being read to its end. Default
	// DefaultMaxBodyBytes (64 MiB); negative: no limit.
	MaxBodyBytes int64
	// Timeout bounds reading a request's body, and then the model's run
	// (each gets the whole timeout); a request that runs out of time is
	// answered 504. An http.Server's ReadTimeout no longer than Timeout
	// bounds the body instead: the handler never loosens it. Default
	// DefaultTimeout (30s); negative: no limit but the client's and the
	// http.Server's.
	Timeout time.Duration
	// Logger receives failed requests: server-side failures (500) at error
	// level, the rest at debug level. Default slog.Default().
	Logger *slog.Logger
	// ServerName and ServerVersion are what the server metadata endpoint
	// reports. Defaults: DefaultServerName ("quiver") and the version of
	// the Quiver module in the binary ("devel" when built from source).
	ServerName    string
	ServerVersion string
	// Ready, when set, answers the server readiness endpoint. Default: the
	// repository lists at least one model and every model it lists is
	// ready (Repository.Metadata).
	Ready func(ctx context.Context) bool
}

// Handler serves the REST endpoints of the Open Inference Protocol; see
// the package documentation for the routes. It is an http.Handler, safe for
// concurrent use, and keeps no resources: there is nothing to close.
type Handler struct {
	core    *core
	mux     *http.ServeMux
	maxBody int64
	stats   *counters
}

// NewHandler returns a Handler serving repo's models. Mount it at the root
// of a server, or under /v2/ of an application's own mux:
//
//	mux.Handle("/v2/", oip.NewHandler(repo, oip.HandlerOptions{}))
func NewHandler(repo Repository, opts HandlerOptions) *Handler {
	h := &Handler{
		core:    newCore(repo, opts.Timeout, opts.Logger, opts.ServerName, opts.ServerVersion, opts.Ready),
		mux:     http.NewServeMux(),
		maxBody: opts.MaxBodyBytes,
		stats:   newHTTPCounters(),
	}
	if h.maxBody == 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	const get, post = http.MethodGet, http.MethodPost
	h.route("/v2", epServerMetadata, get, h.serverMetadata)
	h.route("/v2/health/live", epLive, get, h.live)
	h.route("/v2/health/ready", epReady, get, h.ready)
	h.route("/v2/models/{name}", epModelMetadata, get, h.modelMetadata)
	h.route("/v2/models/{name}/versions/{version}", epModelMetadata, get, h.modelMetadata)
	h.route("/v2/models/{name}/ready", epModelReady, get, h.modelReady)
	h.route("/v2/models/{name}/versions/{version}/ready", epModelReady, get, h.modelReady)
	h.route("/v2/models/{name}/infer", epInfer, post, h.infer)
	h.route("/v2/models/{name}/versions/{version}/infer", epInfer, post, h.infer)
	h.route("/", epOther, "", func(w http.ResponseWriter, r *http.Request) int {
		return h.fail(w, r, http.StatusNotFound, fmt.Errorf("%w: no endpoint %s %s; the Open Inference Protocol endpoints are under /v2", ErrInvalidRequest, r.Method, r.URL.Path))
	})
	return h
}

// ServeHTTP answers one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Stats returns a snapshot of the handler's counters.
func (h *Handler) Stats() Stats { return h.stats.stats() }

// Collector returns a prometheus.Collector exporting the handler's
// counters: quiver_oip_requests_total{endpoint, code} (code is the HTTP
// status) and the histogram quiver_oip_infer_seconds. Every series carries
// constLabels added to the default {"protocol": "rest"}, so the handler
// and the gRPC server (protocol "grpc") register side by side in one
// registry; a key of constLabels overrides the default. Quiver registers
// nothing itself.
func (h *Handler) Collector(constLabels prometheus.Labels) prometheus.Collector {
	return h.stats.collector(constLabels)
}

// route registers f for pattern; method "" accepts any method. Patterns
// carry no method so that a wrong method gets a JSON 405, not the mux's
// plain-text one.
func (h *Handler) route(pattern string, ep endpoint, method string, f func(http.ResponseWriter, *http.Request) int) {
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		var status int
		if method != "" && r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", method)
			status = h.fail(w, r, http.StatusMethodNotAllowed, fmt.Errorf("%w: %s %s; want %s", ErrInvalidRequest, r.Method, r.URL.Path, method))
		} else {
			status = f(w, r)
		}
		h.stats.add(ep, httpCodeIndex(status))
	})
}

func (h *Handler) live(w http.ResponseWriter, r *http.Request) int {
	return writeJSON(w, http.StatusOK, struct {
		Live bool `json:"live"`
	}{true})
}

func (h *Handler) ready(w http.ResponseWriter, r *http.Request) int {
	ready := h.core.ready(r.Context())
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	return writeJSON(w, status, struct {
		Ready bool `json:"ready"`
	}{ready})
}

func (h *Handler) serverMetadata(w http.ResponseWriter, r *http.Request) int {
	return writeJSON(w, http.StatusOK, struct {
		Name       string   `json:"name"`
		Version    string   `json:"version"`
		Extensions []string `json:"extensions"`
	}{h.core.name, h.core.version, extensions})
}

type jsonTensorMetadata struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

func (h *Handler) modelMetadata(w http.ResponseWriter, r *http.Request) int {
	name, version := r.PathValue("name"), r.PathValue("version")
	md, err := h.core.metadata(r.Context(), name, version)
	if err != nil {
		return h.fail(w, r, httpStatus(err), err)
	}
	tensors := func(ios []serving.IOInfo) []jsonTensorMetadata {
		out := make([]jsonTensorMetadata, len(ios))
		for i, io := range ios {
			shape := io.Shape
			if shape == nil {
				shape = []int64{}
			}
			out[i] = jsonTensorMetadata{Name: io.Name, Datatype: metadataDatatype(io.ElementType), Shape: shape}
		}
		return out
	}
	return writeJSON(w, http.StatusOK, struct {
		Name     string               `json:"name"`
		Versions []string             `json:"versions,omitempty"`
		Platform string               `json:"platform"`
		Inputs   []jsonTensorMetadata `json:"inputs"`
		Outputs  []jsonTensorMetadata `json:"outputs"`
	}{name, md.md.Versions, md.md.Platform, tensors(md.inputs), tensors(md.outputs)})
}

func (h *Handler) modelReady(w http.ResponseWriter, r *http.Request) int {
	name, version := r.PathValue("name"), r.PathValue("version")
	md, err := h.core.repo.Metadata(r.Context(), name, version)
	if err != nil {
		return h.fail(w, r, httpStatus(err), err)
	}
	status := http.StatusOK
	if !md.Ready {
		status = http.StatusServiceUnavailable
	}
	return writeJSON(w, status, struct {
		Name  string `json:"name"`
		Ready bool   `json:"ready"`
	}{name, md.Ready})
}

// bufPool recycles request and response buffers up to maxPooled bytes.
var bufPool = sync.Pool{New: func() any { return new([]byte) }}

const maxPooled = 1 << 20

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) <= maxPooled {
		*b = (*b)[:0]
		bufPool.Put(b)
	}
}

func (h *Handler) infer(w http.ResponseWriter, r *http.Request) int {
	start := time.Now()
	name, version := r.PathValue("name"), r.PathValue("version")
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return h.fail(w, r, http.StatusUnsupportedMediaType, fmt.Errorf("%w: Content-Encoding %q; send the body uncompressed", ErrUnsupported, ce))
	}
	headerLen := int64(-1)
	if v := r.Header.Get(HeaderContentLength); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return h.fail(w, r, http.StatusBadRequest, fmt.Errorf("%w: %s is %q; want the byte length of the JSON part of the body", ErrInvalidRequest, HeaderContentLength, v))
		}
		headerLen = n
	}
	bodyBuf := getBuf()
	defer putBuf(bodyBuf)
	body, err := h.readBody(w, r, *bodyBuf)
	*bodyBuf = body
	if err != nil {
		return h.fail(w, r, httpStatus(err), err)
	}
	req, err := decodeInferRequest(body, headerLen)
	if err != nil {
		err = h.core.badRequest(r.Context(), name, version, err)
		return h.fail(w, r, httpStatus(err), err)
	}
	res, err := h.core.infer(r.Context(), name, version, req)
	if err != nil {
		return h.fail(w, r, httpStatus(err), err)
	}
	outBuf := getBuf()
	defer putBuf(outBuf)
	out, jsonLen, err := encodeInferResponse(*outBuf, &res)
	*outBuf = out
	if err != nil {
		return h.fail(w, r, httpStatus(err), fmt.Errorf("model %q: %w", name, err))
	}
	hdr := w.Header()
	if jsonLen >= 0 {
		hdr.Set("Content-Type", "application/octet-stream")
		hdr.Set(HeaderContentLength, strconv.Itoa(jsonLen))
	} else {
		hdr.Set("Content-Type", "application/json")
	}
	hdr.Set("Content-Length", strconv.Itoa(len(out)))
	h.stats.observe(start)
	w.WriteHeader(http.StatusOK)
	w.Write(out)
	return http.StatusOK
}

// readBody reads the request body into buf, refusing one over the limit
// before reading it when Content-Length announces it, and as soon as it
// passes the limit otherwise. The read is bounded by the timeout, or by the
// server's ReadTimeout when that is tighter.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, buf []byte) ([]byte, error) {
	limit := h.maxBody
	if limit > 0 && r.ContentLength > limit {
		return buf, fmt.Errorf("%w: %d bytes; the limit is %d", ErrBodyTooLarge, r.ContentLength, limit)
	}
	// The server set its read deadline, if it has a ReadTimeout, when the
	// request began. When that is the tighter bound it stays: replacing it
	// would let a slow client hold the connection past what the server
	// allows.
	rc := http.NewResponseController(w)
	var serverBound time.Duration
	if srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok && srv.ReadTimeout > 0 &&
		(h.core.timeout <= 0 || srv.ReadTimeout <= h.core.timeout) {
		serverBound = srv.ReadTimeout
	} else if h.core.timeout > 0 {
		rc.SetReadDeadline(time.Now().Add(h.core.timeout))
	}
	// Content-Length sizes the buffer only up to a point: memory follows
	// the bytes that arrive, not the bytes announced.
	if want := min(r.ContentLength, maxPooled); want > 0 && int64(cap(buf)) < want {
		buf = make([]byte, 0, want)
	}
	var src io.Reader = r.Body
	if limit > 0 {
		src = io.LimitReader(r.Body, limit+1)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := src.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if limit > 0 && int64(len(buf)) > limit {
			return buf, fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, limit)
		}
		if err == io.EOF {
			// Once the body is in, the context bounds the run: a read
			// deadline left behind would make the server's watch on the
			// connection fail as if the client had gone, and cancel the
			// run. After a failed read the deadline stays, bounding what
			// the server reads of the rest.
			if serverBound > 0 || h.core.timeout > 0 {
				rc.SetReadDeadline(time.Time{})
			}
			return buf, nil
		}
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
				if serverBound > 0 {
					return buf, fmt.Errorf("reading the request body: no end within the server's ReadTimeout %v: %w", serverBound, context.DeadlineExceeded)
				}
				return buf, fmt.Errorf("reading the request body: no end within %v: %w", h.core.timeout, context.DeadlineExceeded)
			}
			return buf, fmt.Errorf("%w: reading the request body: %v", ErrInvalidRequest, err)
		}
	}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// fail answers an error as the protocol's JSON error object.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, err error) int {
	level := slog.LevelDebug
	if status >= 500 && status != http.StatusServiceUnavailable && status != http.StatusGatewayTimeout {
		level = slog.LevelError
	}
	h.core.log.Log(r.Context(), level, "oip: request failed", "method", r.Method, "path", r.URL.Path, "status", status, "error", err)
	if status == statusCanceled {
		// The client is gone; nobody reads an answer.
		return status
	}
	buf := getBuf()
	defer putBuf(buf)
	b := append((*buf)[:0], `{"error":`...)
	b = appendJSONString(b, strings.ToValidUTF8(err.Error(), "\uFFFD"))
	b = append(b, '}')
	*buf = b
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
	return status
}

func writeJSON(w http.ResponseWriter, status int, v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		// The package's own types always marshal; keep the answer valid
		// JSON regardless.
		status, b = http.StatusInternalServerError, []byte(`{"error":"oip: cannot encode the answer"}`)
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
	return status
}
