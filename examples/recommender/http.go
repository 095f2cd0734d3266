package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/quiverml/quiver/abtest"
	"github.com/quiverml/quiver/features"
	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/vector"
)

// maxBody bounds the JSON bodies the service reads.
const maxBody = 4 << 10

// routes mounts every endpoint. Each application endpoint goes through
// instrument, which gives the request an id, a logger carrying it, a span
// and its metrics.
func (a *App) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /recommend", a.instrument("/recommend", a.handleRecommend))
	mux.Handle("POST /recommend", a.instrument("/recommend", a.handleRecommend))
	mux.Handle("POST /feedback", a.instrument("/feedback", a.handleFeedback))
	mux.Handle("GET /experiment", a.instrument("/experiment", a.handleExperiment))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "live"})
	})
	mux.HandleFunc("GET /readyz", a.handleReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics, promhttp.HandlerOpts{}))
	a.mountOIP(mux)
	return mux
}

// requestKey carries a request's id and logger in its context.
type requestKey struct{}

type requestInfo struct {
	id  string
	log *slog.Logger
}

// loggerFrom returns the request's logger (with its request_id), or
// fallback outside a request.
func loggerFrom(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	if ri, ok := ctx.Value(requestKey{}).(requestInfo); ok {
		return ri.log
	}
	return fallback
}

// requestIDFrom returns the request's id, or "".
func requestIDFrom(ctx context.Context) string {
	ri, _ := ctx.Value(requestKey{}).(requestInfo)
	return ri.id
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap gives http.ResponseController the server's writer, so that the
// handlers behind instrument keep its controls: the Open Inference Protocol
// handler bounds the reading of a request body with SetReadDeadline.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument wraps an endpoint: a fresh request id (echoed in the
// X-Request-Id header; a client's own X-Request-Id is logged beside it),
// a server span that the batcher's spans join, one log line per request,
// and the quiver_recommender_http_* metrics.
func (a *App) instrument(route string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := a.ids.next()
		ctx, span := a.tracer.Start(r.Context(), r.Method+" "+route, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("http.route", route),
				attribute.String("request.id", id)))
		defer span.End()
		log := a.log.With("request_id", id)
		if c := r.Header.Get("X-Request-Id"); c != "" {
			log = log.With("client_request_id", c[:min(len(c), 128)])
		}
		ctx = context.WithValue(ctx, requestKey{}, requestInfo{id: id, log: log})
		w.Header().Set("X-Request-Id", id)
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h(sw, r.WithContext(ctx))

		took := time.Since(start)
		a.httpm.observe(route, sw.code, took)
		span.SetAttributes(attribute.Int("http.response.status_code", sw.code))
		level := slog.LevelInfo
		if sw.code >= 500 {
			level = slog.LevelError
			span.SetStatus(codes.Error, http.StatusText(sw.code))
		}
		log.LogAttrs(ctx, level, "http request", slog.String("method", r.Method), slog.String("route", route),
			slog.Int("status", sw.code), slog.Float64("took_ms", float64(took.Microseconds())/1000))
	})
}

// errorBody is every error response: a stable code for programs, a
// message for people, and the request id to find the logs by.
type errorBody struct {
	Error     apiError `json:"error"`
	RequestID string   `json:"request_id,omitempty"`
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Variant is set when the failure happened in a variant's model.
	Variant string `json:"variant,omitempty"`
}

// statusOf maps an error of the request path to an HTTP status and code.
func statusOf(err error) (int, string) {
	switch {
	case errors.Is(err, ErrBadUser):
		return http.StatusBadRequest, "bad_user"
	case errors.Is(err, ErrUnknownUser):
		return http.StatusNotFound, "unknown_user"
	case errors.Is(err, ErrBadK):
		return http.StatusBadRequest, "bad_k"
	case errors.Is(err, ErrBadPrice):
		return http.StatusBadRequest, "bad_max_price"
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest, "bad_request"
	case errors.Is(err, ErrBadFeedback):
		return http.StatusBadRequest, "bad_feedback"
	case errors.Is(err, ErrUnknownRequest):
		return http.StatusNotFound, "unknown_request"
	case errors.Is(err, ErrDuplicateFeedback):
		return http.StatusConflict, "duplicate_feedback"
	case errors.Is(err, serving.ErrOverloaded):
		return http.StatusServiceUnavailable, "overloaded"
	case errors.Is(err, serving.ErrNotReady): // registry.ErrNotServing matches it too
		return http.StatusServiceUnavailable, "not_ready"
	case errors.Is(err, serving.ErrClosed), errors.Is(err, abtest.ErrClosed),
		errors.Is(err, features.ErrClosed), errors.Is(err, vector.ErrClosed):
		return http.StatusServiceUnavailable, "shutting_down"
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, "timeout"
	case errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, "canceled"
	}
	return http.StatusInternalServerError, "internal"
}

// writeError answers with err as JSON, and records it on the span.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code := statusOf(err)
	body := errorBody{Error: apiError{Code: code, Message: err.Error()}, RequestID: requestIDFrom(r.Context())}
	var pe *predictError
	if errors.As(err, &pe) {
		body.Error.Variant = pe.variant
	}
	span := trace.SpanFromContext(r.Context())
	span.RecordError(err)
	if status >= 500 {
		loggerFrom(r.Context(), slog.Default()).Error("request failed", "code", code, "error", err, "variant", body.Error.Variant)
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeJSON reads a small JSON body into v, refusing unknown fields and
// trailing data.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v (want a JSON object of at most %d bytes)", ErrBadRequest, err, maxBody)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the JSON object", ErrBadRequest)
	}
	return nil
}

// recommendParams are the inputs of /recommend: query parameters for GET,
// a JSON object for POST.
type recommendParams struct {
	User     string   `json:"user"`
	K        *int     `json:"k"`
	MaxPrice *float64 `json:"max_price"`
}

// handleRecommend serves GET /recommend?user=u42&k=10[&max_price=0.5] and
// POST /recommend {"user": "u42", "k": 10, "max_price": 0.5}.
func (a *App) handleRecommend(w http.ResponseWriter, r *http.Request) {
	p, err := a.recommendParams(w, r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	k, maxPrice := 10, -1.0
	if p.K != nil {
		k = *p.K
	}
	if p.MaxPrice != nil {
		if maxPrice = *p.MaxPrice; math.IsNaN(maxPrice) || math.IsInf(maxPrice, 0) || maxPrice < 0 {
			writeError(w, r, fmt.Errorf("%w: %v, want a finite number >= 0", ErrBadPrice, maxPrice))
			return
		}
	}
	rec, err := a.recommend(r.Context(), requestIDFrom(r.Context()), p.User, k, maxPrice)
	if err != nil {
		writeError(w, r, err)
		return
	}
	trace.SpanFromContext(r.Context()).SetAttributes(attribute.String("abtest.variant", rec.Variant),
		attribute.Int64("registry.version", rec.Model.Version))
	writeJSON(w, http.StatusOK, rec)
}

func (a *App) recommendParams(w http.ResponseWriter, r *http.Request) (recommendParams, error) {
	var p recommendParams
	if r.Method == http.MethodPost {
		return p, decodeJSON(w, r, &p)
	}
	q := r.URL.Query()
	p.User = q.Get("user")
	if s := q.Get("k"); s != "" {
		k, err := strconv.Atoi(s)
		if err != nil {
			return p, fmt.Errorf("%w: %q, want an integer 1..%d", ErrBadK, s, a.cfg.Candidates)
		}
		p.K = &k
	}
	if s := q.Get("max_price"); s != "" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return p, fmt.Errorf("%w: %q, want a number >= 0", ErrBadPrice, s)
		}
		p.MaxPrice = &f
	}
	return p, nil
}

// handleFeedback serves POST /feedback {"user", "item", "request_id",
// "clicked"}.
func (a *App) handleFeedback(w http.ResponseWriter, r *http.Request) {
	var fb feedbackRequest
	if err := decodeJSON(w, r, &fb); err != nil {
		writeError(w, r, err)
		return
	}
	res, err := a.feedback(fb)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// handleReady answers 200 when the registry serves every alias, else 503
// naming the missing ones.
func (a *App) handleReady(w http.ResponseWriter, _ *http.Request) {
	ok, missing := a.Ready()
	if !ok {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "missing": missing})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ready": true, "serving": a.servedVersions()})
}

// handleExperiment serves GET /experiment: the experiment's state and
// statistics, for people and dashboards.
func (a *App) handleExperiment(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.Snapshot())
}
