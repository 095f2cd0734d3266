// Command features shows the online feature store inside a serving
// process: it registers feature views, streams updates into the store,
// reads dense rows for a model, and prints freshness and drift reports.
//
//	go run ./examples/features                       # in-process only
//	go run ./examples/features -redis localhost:6379 # also a Redis tier and a Redis stream
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"github.com/quiverml/quiver/features"
	"github.com/quiverml/quiver/features/redisstore"
	"github.com/redis/go-redis/v9"
)

func main() {
	redisAddr := flag.String("redis", "", "Redis address; empty runs without Redis")
	users := flag.Int("users", 20000, "number of user entities")
	flag.Parse()
	if err := run(*redisAddr, *users); err != nil {
		log.Fatal(err)
	}
}

var userView = features.View{
	Name: "user", Entity: "user_id", TTL: 10 * time.Minute, Version: 1,
	Features: []features.Feature{
		{Name: "age", Kind: features.KindFloat32, Default: features.Float32(35)},
		{Name: "orders_30d", Kind: features.KindInt64},
		{Name: "avg_basket", Kind: features.KindFloat32},
		{Name: "country", Kind: features.KindString, Default: features.String("unknown")},
		{Name: "taste", Kind: features.KindEmbedding, Dim: 4},
	},
}

// event makes one user update; shift moves the basket distribution to
// simulate drift.
func event(r *rand.Rand, users int, at time.Time, shift float64) features.Row {
	id := "user:" + strconv.Itoa(r.IntN(users))
	return features.Row{Entity: id, EventTime: at, Values: map[string]features.Value{
		"age":        features.Float32(float32(18 + r.IntN(60))),
		"orders_30d": features.Int64(int64(r.IntN(12))),
		"avg_basket": features.Float32(float32(40 + shift + r.NormFloat64()*8)),
		"country":    features.String([]string{"de", "fr", "us", "jp"}[r.IntN(4)]),
		"taste":      features.Embedding([]float32{r.Float32(), r.Float32(), r.Float32(), r.Float32()}),
	}}
}

func run(redisAddr string, users int) error {
	ctx := context.Background()
	mem := features.New(features.Options{})
	defer mem.Close()
	var store features.Store = mem
	var rdb *redis.Client
	if redisAddr != "" {
		rdb = redis.NewClient(&redis.Options{Addr: redisAddr})
		defer rdb.Close()
		if err := rdb.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("redis at %s: %w", redisAddr, err)
		}
		store = redisstore.New(mem, rdb, redisstore.Options{Prefix: "quiver-example"})
		fmt.Println("shared tier: Redis at", redisAddr)
	}
	if err := store.Register(userView); err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(1, 2))

	// 1. Stream a first wave of updates (the reference window).
	start := time.Now()
	if err := stream(ctx, store, rdb, r, users, 3*users, 0); err != nil {
		return err
	}
	n, _ := mem.Len("user")
	fmt.Printf("ingested %d events for %d users in %v\n", 3*users, n, time.Since(start).Round(time.Millisecond))
	if err := mem.CaptureReference("user"); err != nil {
		return err
	}

	// 2. Read dense rows for a model: a batch of 8 users, 3 features.
	sel, err := store.Select("user", "age", "avg_basket", "taste")
	if err != nil {
		return err
	}
	ids := []string{"user:1", "user:2", "user:3", "user:4", "user:5", "user:6", "user:7", "nobody"}
	dst := make([]float32, len(ids)*sel.Width())
	status := make([]features.Status, len(ids)*sel.Len())
	if err := store.GetMany(ctx, sel, ids, dst, status); err != nil {
		return err
	}
	weights := []float32{0.01, 0.02, 0.5, -0.5, 0.25, 0.1}
	fmt.Printf("\nmodel input: %d rows x %d columns (%v)\n", len(ids), sel.Width(), sel.Features())
	for i, id := range ids {
		row := dst[i*sel.Width() : (i+1)*sel.Width()]
		var score float32
		for j, w := range weights {
			score += w * row[j]
		}
		fmt.Printf("  %-8s %v  status=%v  score=%.3f\n", id, fmtRow(row), status[i*sel.Len():(i+1)*sel.Len()], score)
	}

	// 3. A second wave where the basket size drifted upwards.
	if err := stream(ctx, store, rdb, r, users, 3*users, 12); err != nil {
		return err
	}
	for range 200 { // some serving traffic for the freshness histogram
		_ = store.GetMany(ctx, sel, ids, dst, status)
	}

	// 4. Reports.
	st, _ := mem.Stats().View("user")
	fmt.Printf("\nfreshness of view %q: %d rows held, %d reads (%d found, %d not found, %d stale)\n",
		st.View, st.Rows, st.Reads, st.Found, st.NotFound, st.Stale)
	fmt.Printf("  served age p50 <= %v, p99 <= %v; writes %d (stale events dropped: %d, rejected: %d)\n",
		st.Freshness.Quantile(0.5), st.Freshness.Quantile(0.99), st.Writes, st.StaleWrites, st.Rejected)
	rep, err := mem.Drift("user", features.DriftThresholds{})
	if err != nil {
		return err
	}
	fmt.Printf("\ndrift of view %q v%d against the reference window (PSI > %.2f, KS > %.2f or JS > %.2f):\n",
		rep.View, rep.Version, rep.Thresholds.PSI, rep.Thresholds.KS, rep.Thresholds.JS)
	for _, f := range rep.Features {
		if !f.Scored {
			fmt.Printf("  %-11s not scored (strings or too few values)\n", f.Feature)
			continue
		}
		flag := ""
		if f.Drifted {
			flag = "  DRIFTED"
		}
		fmt.Printf("  %-11s PSI=%.3f KS=%.3f JS=%.3f%s\n", f.Feature, f.PSI, f.KS, f.JS, flag)
	}
	if len(rep.Drifted) == 0 {
		fmt.Fprintln(os.Stderr, "expected the basket drift to be detected")
		os.Exit(1)
	}
	return nil
}

// stream sends n events through the store: through a Redis stream and a
// consumer group when Redis is configured, else through Ingest from a
// channel.
func stream(ctx context.Context, store features.Store, rdb *redis.Client, r *rand.Rand, users, n int, shift float64) error {
	if rdb == nil {
		ch := make(chan features.Row, 1024)
		go func() {
			defer close(ch)
			for range n {
				ch <- event(r, users, time.Now(), shift)
			}
		}()
		_, err := features.Ingest(ctx, store, "user", ch, features.IngestOptions{BatchSize: 512})
		return err
	}
	streamKey := "quiver-example:user-events"
	for range n {
		if _, err := redisstore.Publish(ctx, rdb, streamKey, userView, event(r, users, time.Now(), shift)); err != nil {
			return err
		}
	}
	src := redisstore.NewStreamSource(rdb, redisstore.StreamOptions{Stream: streamKey, Group: "example", Consumer: "replica-1", Count: 512, Block: 50 * time.Millisecond})
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	var stats redisstore.StreamStats
	go func() {
		var err error
		stats, err = src.Run(cctx, store, userView)
		done <- err
	}()
	for {
		p, err := rdb.XPending(ctx, streamKey, "example").Result()
		if err == nil && p.Count == 0 {
			info, ierr := rdb.XInfoGroups(ctx, streamKey).Result()
			if ierr == nil && len(info) == 1 && info[0].Lag == 0 {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	fmt.Printf("stream %s: read %d, stored %d, acked %d\n", streamKey, stats.Read, stats.Stored, stats.Acked)
	return nil
}

func fmtRow(row []float32) string {
	s := "["
	for i, x := range row {
		if i > 0 {
			s += " "
		}
		s += strconv.FormatFloat(float64(x), 'f', 2, 32)
	}
	return s + "]"
}
