// Package redisnotify tells the replicas of a service about registry
// changes at once, through Redis pub/sub, so that a registry.Server follows
// an alias move made on another replica within a round trip and a load
// instead of waiting for its next poll.
//
// The writer's store calls Publish after each change (registry/s3's
// Options.OnChange has its signature); every replica runs Follow, which
// pokes its Server on each message:
//
//	n, _ := redisnotify.New(rdb, redisnotify.Options{})
//	store, _ := regs3.Open(ctx, regs3.Options{ /* ... */ OnChange: n.Publish})
//	srv, _ := registry.NewServer(store, loader, registry.ServerOptions{PollInterval: 30 * time.Second})
//	go n.Follow(ctx, func(registry.AuditEvent) { srv.Poke() })
//
// Pub/sub delivers at most once, to the subscribers connected at the time:
// a message sent while Redis or a subscriber is down is lost. Polling stays
// the fallback, so a lost message costs at most one PollInterval, and
// Follow pokes once on every (re)subscription, since anything may have
// changed while it was away. A message is only a nudge: the Server reads
// the store itself, so a forged or garbled message cannot change what is
// served.
package redisnotify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/quiverml/quiver/registry"
)

// DefaultChannel is Options.Channel when empty.
const DefaultChannel = "quiver:registry"

// ErrConfig reports options New cannot work with.
var ErrConfig = errors.New("redisnotify: bad configuration")

// Options configures a Notifier. Every zero value is a documented default.
type Options struct {
	// Channel is the pub/sub channel; writers and followers of one
	// registry must agree on it. Default DefaultChannel.
	Channel string
	// Timeout bounds each PUBLISH, so that a slow Redis delays a registry
	// write by at most this much (on clients built with
	// ContextTimeoutEnabled; others are bounded by their ReadTimeout and
	// WriteTimeout). Default one second.
	Timeout time.Duration
	// HealthCheck is how often Follow pings Redis when no message arrives,
	// to notice a connection that died silently and subscribe again.
	// Default 10 seconds.
	HealthCheck time.Duration
	// Logger receives the start and end of each outage (once each) and
	// resubscriptions. Nil means slog.Default().
	Logger *slog.Logger
}

// Stats counts what a Notifier did.
type Stats struct {
	// Published and PublishFailures count Publish calls that reached Redis
	// and that did not.
	Published, PublishFailures uint64
	// Subscriptions counts Follow's subscriptions: 1 after the first, one
	// more after each reconnection.
	Subscriptions uint64
	// Received counts messages; Undecodable those whose payload was not an
	// audit event (they still poke).
	Received, Undecodable uint64
}

// Notifier publishes registry changes and follows them. It is safe for
// concurrent use; one Notifier may both publish and follow.
type Notifier struct {
	rdb  redis.UniversalClient
	opts Options
	log  *slog.Logger

	published, failures, subscriptions, received, undecodable atomic.Uint64

	mu   sync.Mutex
	down bool // the last Publish failed
}

// New returns a Notifier over rdb.
func New(rdb redis.UniversalClient, opts Options) (*Notifier, error) {
	if rdb == nil {
		return nil, fmt.Errorf("%w: no Redis client", ErrConfig)
	}
	if opts.Timeout < 0 || opts.HealthCheck < 0 {
		return nil, fmt.Errorf("%w: Timeout %v, HealthCheck %v; want > 0 (or 0 for the defaults)", ErrConfig, opts.Timeout, opts.HealthCheck)
	}
	if opts.Channel == "" {
		opts.Channel = DefaultChannel
	}
	if opts.Timeout == 0 {
		opts.Timeout = time.Second
	}
	if opts.HealthCheck == 0 {
		opts.HealthCheck = 10 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Notifier{rdb: rdb, opts: opts, log: log.With("channel", opts.Channel)}, nil
}

// Publish tells the followers about one change. It never fails the change:
// a Redis that cannot be reached is counted (Stats.PublishFailures) and
// logged once per outage, and the followers see the change at their next
// poll instead.
func (n *Notifier) Publish(e registry.AuditEvent) {
	payload, err := json.Marshal(e)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), n.opts.Timeout)
		err = n.rdb.Publish(ctx, n.opts.Channel, payload).Err()
		cancel()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		n.failures.Add(1)
		if !n.down {
			n.down = true
			n.log.Warn("redisnotify: change not published; replicas see it at their next poll", "model", e.Model, "action", e.Action, "error", err)
		}
		return
	}
	n.published.Add(1)
	if n.down {
		n.down = false
		n.log.Info("redisnotify: publishing again")
	}
}

// Follow subscribes to the channel and calls poke for every change
// published, with its audit event, until ctx ends; it returns ctx's error.
// It also calls poke with the zero AuditEvent ("anything may have
// changed") once subscribed and after every resubscription, and for a
// message that is not an audit event. poke runs on Follow's goroutine, one
// call at a time; registry.Server.Poke is quick and coalesces.
//
// A lost connection is subscribed again by the Redis client, retrying
// every 100ms while Redis is down.
func (n *Notifier) Follow(ctx context.Context, poke func(registry.AuditEvent)) error {
	ps := n.rdb.Subscribe(ctx, n.opts.Channel)
	defer ps.Close()
	ch := ps.ChannelWithSubscriptions(redis.WithChannelHealthCheckInterval(n.opts.HealthCheck))
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m, ok := <-ch:
			if !ok {
				return fmt.Errorf("redisnotify: subscription closed: %w", redis.ErrClosed)
			}
			switch m := m.(type) {
			case *redis.Subscription:
				if m.Kind != "subscribe" {
					continue
				}
				if n.subscriptions.Add(1) > 1 {
					n.log.Info("redisnotify: subscribed again; reading the registry for what was missed")
				}
				poke(registry.AuditEvent{})
			case *redis.Message:
				n.received.Add(1)
				var e registry.AuditEvent
				if err := json.Unmarshal([]byte(m.Payload), &e); err != nil || e.Model == "" {
					n.undecodable.Add(1)
					n.log.Debug("redisnotify: message is not an audit event", "bytes", len(m.Payload))
					e = registry.AuditEvent{}
				}
				poke(e)
			}
		}
	}
}

// Stats returns the counts so far.
func (n *Notifier) Stats() Stats {
	return Stats{
		Published: n.published.Load(), PublishFailures: n.failures.Load(),
		Subscriptions: n.subscriptions.Load(),
		Received:      n.received.Load(), Undecodable: n.undecodable.Load(),
	}
}
