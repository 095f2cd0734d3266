package redisstore_test

import (
	"context"
	"log"
	"os"
	"time"

	"github.com/quiverml/quiver/features"
	"github.com/quiverml/quiver/features/redisstore"
	"github.com/redis/go-redis/v9"
)

// A replica keeps rows in process, shares them through Redis and follows a
// Redis stream. (Needs a Redis server, so it is compiled but not run.)
func Example() {
	ctx := context.Background()
	view := features.View{Name: "user", Entity: "user_id", TTL: time.Hour,
		Features: []features.Feature{{Name: "age", Kind: features.KindFloat32}}}
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	defer rdb.Close()
	local := features.New(features.Options{})
	defer local.Close()
	tier := redisstore.New(local, rdb, redisstore.Options{})
	if err := tier.Register(view); err != nil {
		log.Fatal(err)
	}
	host, _ := os.Hostname()
	src := redisstore.NewStreamSource(rdb, redisstore.StreamOptions{Stream: "user-events", Group: "features-" + host, Consumer: host})
	go func() {
		if _, err := src.Run(ctx, tier, view); err != nil {
			log.Print(err)
		}
	}()
	_, _ = redisstore.Publish(ctx, rdb, "user-events", view, features.Row{Entity: "u1", EventTime: time.Now(),
		Values: map[string]features.Value{"age": features.Float32(31)}})
	sel, _ := tier.Select("user")
	dst := make([]float32, sel.Width())
	status := make([]features.Status, sel.Len())
	_ = tier.GetMany(ctx, sel, []string{"u1"}, dst, status) // local first, then Redis
}
