package redisstate_test

import (
	"context"
	"log"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/quiverml/quiver/abtest"
	"github.com/quiverml/quiver/abtest/redisstate"
)

// Every replica of a service runs this: its experiment, tracker, guardrail
// and bandit decide from the numbers of all replicas.
func Example() {
	ctx := context.Background()
	exp, err := abtest.NewExperiment(abtest.Config{
		Name:     "ranker-v2",
		Variants: []abtest.Variant{{Name: "v2", Weight: 5}, {Name: "v1", Weight: 95}},
		Control:  "v1",
	})
	if err != nil {
		log.Fatal(err)
	}
	tracker, err := abtest.NewTracker(exp.Name(), exp.Variants()) // or router.Tracker()
	if err != nil {
		log.Fatal(err)
	}
	bandit, err := abtest.NewThompsonBeta([]string{"a", "b", "c"}, abtest.BanditOptions{Seed: uint64(os.Getpid())})
	if err != nil {
		log.Fatal(err)
	}

	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	sync, err := redisstate.New(rdb, redisstate.Options{ReplicaID: os.Getenv("HOSTNAME")})
	if err != nil {
		log.Fatal(err)
	}
	defer sync.Close()
	for _, err := range []error{sync.Experiment(exp), sync.Tracker(tracker), sync.Bandit("ranker-arms", bandit)} {
		if err != nil {
			log.Fatal(err)
		}
	}
	go sync.Run(ctx) // flushes every 250ms; logs once if Redis goes away

	guard, err := abtest.NewGuardrail(exp, tracker, abtest.GuardrailOptions{})
	if err != nil {
		log.Fatal(err)
	}
	go guard.Run(ctx, 10*time.Second) // judges every replica's requests; a stop reaches them all

	// The request path is unchanged and never waits for Redis.
	a, _ := exp.Assign("user-42", nil)
	_ = tracker.ObserveRequest(a.Variant, 3*time.Millisecond, false)
	_ = bandit.Update(bandit.Select(), 1)

	if err := sync.Err(); err != nil {
		log.Printf("experiment state not shared right now: %v", err) // a health check
	}
}
