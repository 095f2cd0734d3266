// Command recommender is a whole recommendation service built on Quiver,
// the map of how its packages compose in one Go process:
//
//   - features: user and item feature views, written at start and read at
//     request time;
//   - vector: an HNSW index of item embeddings that retrieves candidates
//     by a user's taste;
//   - serving: a Batcher merging concurrent requests' candidate rows into
//     one ONNX Runtime run;
//   - registry: four versions of the scoring model with lineage, served by
//     alias (production, canary, shadow) with hot swaps;
//   - quant: the int8 copy of the model, checked against the float one;
//   - abtest: production against a canary, the int8 copy in shadow, and
//     guardrails that stop a canary that serves or converts worse.
//
// It serves HTTP (GET /recommend, POST /feedback, /v2 Open Inference
// Protocol, /metrics, /healthz, /readyz) with JSON logs carrying request
// ids and optional OpenTelemetry traces.
//
//	go run ./examples/recommender               # serve on 127.0.0.1:8080
//	go run ./examples/recommender -demo 20s     # serve and drive it with 64 clients, then report
//	go run ./examples/recommender -redis localhost:6379 -trace
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
)

// options are the command's flags.
type options struct {
	addr     string
	data     string
	redis    string
	grpc     string
	demo     time.Duration
	clients  int
	moves    int
	trace    bool
	logLevel string
	users    int
	items    int
	canary   float64
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:8080", "address to serve on (ignored with -demo, which picks a free loopback port)")
	flag.StringVar(&o.data, "data", "", "registry folder (default: a temporary folder, removed at exit)")
	flag.StringVar(&o.grpc, "grpc", "", "address for the Open Inference Protocol over gRPC, e.g. 127.0.0.1:8081 (default: off)")
	flag.StringVar(&o.redis, "redis", "", "Redis address for the feature store's shared tier and the experiment's pooled numbers (default: in-process only)")
	flag.DurationVar(&o.demo, "demo", 0, "run the built-in load generator for this long, print a report and exit")
	flag.IntVar(&o.clients, "clients", 64, "concurrent clients of the load generator")
	flag.IntVar(&o.moves, "moves", 6, "times the load generator moves the production alias between v1 and v2")
	flag.BoolVar(&o.trace, "trace", false, "print OpenTelemetry spans to stderr as JSON lines")
	flag.StringVar(&o.logLevel, "log-level", "", "debug, info, warn or error (default: info; warn with -demo)")
	flag.IntVar(&o.users, "users", 0, "users in the generated world (default 2000)")
	flag.IntVar(&o.items, "items", 0, "items in the generated world (default 10000)")
	flag.Float64Var(&o.canary, "canary", 0, "canary share of users in percent (default 10)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "recommender:", err)
		os.Exit(1)
	}
}

// run builds the service, serves it until ctx ends (or drives it for
// o.demo), then shuts it down in order: the HTTP server stops accepting
// and finishes its requests, then the App closes its parts, then the
// tracer flushes its last spans.
func run(ctx context.Context, o options, stdout, stderr io.Writer) (err error) {
	level := slog.LevelInfo
	if o.demo > 0 {
		level = slog.LevelWarn
	}
	if o.logLevel != "" {
		if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
			return fmt.Errorf("-log-level %q: want debug, info, warn or error", o.logLevel)
		}
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)

	cfg := Config{DataDir: o.data, Redis: o.redis, Users: o.users, Items: o.items, CanaryPercent: o.canary, Logger: logger}
	if o.trace {
		tp := newTracerProvider(stderr)
		cfg.TracerProvider = tp
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err = errors.Join(err, tp.Shutdown(sctx))
		}()
	}

	started := time.Now()
	app, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	addr := o.addr
	if o.demo > 0 {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return errors.Join(err, app.Close())
	}
	hs := &http.Server{
		Handler:           app.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	base := "http://" + ln.Addr().String()
	var gs *grpc.Server
	grpcServed := make(chan error, 1)
	if o.grpc != "" {
		gln, err := net.Listen("tcp", o.grpc)
		if err != nil {
			return errors.Join(fmt.Errorf("-grpc: %w", err), hs.Close(), app.Close())
		}
		gs = grpc.NewServer()
		if err := app.RegisterGRPC(gs); err != nil {
			return errors.Join(err, gln.Close(), hs.Close(), app.Close())
		}
		go func() { grpcServed <- gs.Serve(gln) }()
		logger.Info("open inference protocol over grpc", "addr", gln.Addr().String())
	}

	var runErr error
	if o.demo > 0 {
		printStartup(stdout, app, time.Since(started))
		runErr = demo(ctx, stdout, app, base, o)
	} else {
		fmt.Fprintf(stdout, "recommender ready in %v: %s/recommend?user=u42&k=10 (metrics at /metrics, experiment at /experiment)\n",
			time.Since(started).Round(time.Millisecond), base)
		select {
		case <-ctx.Done():
		case runErr = <-served:
		}
	}

	// Graceful shutdown, in order.
	reason := "demo finished"
	if c := context.Cause(ctx); c != nil {
		reason = c.Error()
	}
	logger.Info("shutting down", "reason", reason, "error", runErr)
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shutErr := hs.Shutdown(sctx)
	if err := <-served; runErr == nil && !errors.Is(err, http.ErrServerClosed) {
		runErr = err
	}
	if gs != nil {
		stopGRPC(sctx, gs)
		if err := <-grpcServed; runErr == nil && err != nil {
			runErr = err
		}
	}
	closeErr := app.Close()
	logger.Info("stopped", "shutdown_error", shutErr, "close_error", closeErr)
	if o.demo > 0 && runErr == nil && shutErr == nil && closeErr == nil {
		fmt.Fprintln(stdout, "\nshut down cleanly: HTTP server drained, then router, batchers, registry, feature store and index closed")
	}
	return errors.Join(runErr, shutErr, closeErr)
}

// stopGRPC lets the gRPC server's calls in flight finish, and cuts them
// off when ctx ends first.
func stopGRPC(ctx context.Context, gs *grpc.Server) {
	done := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		gs.Stop()
		<-done
	}
}

// demo drives the service with the load generator and prints the report.
// It fails when a request failed outside the canary or an alias move was
// never seen.
func demo(ctx context.Context, w io.Writer, app *App, base string, o options) error {
	fmt.Fprintf(w, "\nload: %d clients for %v against %s: each asks for 10 recommendations,\n"+
		"clicks by the world's true click model, and posts the outcome to /feedback;\n"+
		"meanwhile production moves between v1 and v2 %d times.\n", o.clients, o.demo, base, o.moves)
	res, err := runLoad(ctx, app, base, loadOptions{Clients: o.clients, Duration: o.demo, Moves: o.moves, Seed: 7})
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	printLoad(w, res, app.Snapshot())
	if ctx.Err() != nil {
		fmt.Fprintln(w, "\ninterrupted: the numbers above cover the run until then")
		return nil
	}
	var problems []error
	if n := res.FailedExcept(aliasCanary); n > 0 {
		problems = append(problems, fmt.Errorf("%d recommendations failed outside the canary", n))
	}
	if res.FeedbackFailed > 0 {
		problems = append(problems, fmt.Errorf("%d feedback posts failed", res.FeedbackFailed))
	}
	for _, m := range res.Moves {
		if !m.Observed {
			problems = append(problems, fmt.Errorf("move v%d -> v%d: %s", m.From, m.To, m.Err))
		}
	}
	return errors.Join(problems...)
}
