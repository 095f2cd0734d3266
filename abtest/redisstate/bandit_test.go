package redisstate

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/abtest"
	"github.com/quiverml/quiver/internal/redistest"
)

// conversion rates of the arms; "c" is the best.
var armRates = []float64{0.04, 0.05, 0.08}

var arms = []string{"a", "b", "c"}

// play runs rounds in which each bandit of group selects an arm and is
// rewarded; after every flushEvery rounds, flush runs (nil: never). It
// returns the share of the best arm among the plays of the last quarter.
func play(t *testing.T, group []abtest.Bandit, env *rand.Rand, rounds, flushEvery int, flush func()) float64 {
	t.Helper()
	var best, late int
	for r := range rounds {
		for _, b := range group {
			arm := b.Select()
			i := map[string]int{"a": 0, "b": 1, "c": 2}[arm]
			reward := 0.0
			if env.Float64() < armRates[i] {
				reward = 1
			}
			require.NoError(t, b.Update(arm, reward))
			if r >= rounds*3/4 {
				late++
				if i == 2 {
					best++
				}
			}
		}
		if flush != nil && (r+1)%flushEvery == 0 {
			flush()
		}
	}
	return float64(best) / float64(late)
}

// Three replicas that each see a third of the rewards, pooled through
// Redis, pick the best arm as reliably as one replica that sees all of
// them, and far more reliably than three replicas that do not pool.
func TestBanditPooledConvergesLikeOneReplica(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Options{})
	const runs, rounds, flushEvery = 60, 300, 5
	var pooled, single, isolated float64
	quiet := slog.New(slog.DiscardHandler)
	newTS := func(s uint64) abtest.Bandit {
		b, err := abtest.NewThompsonBeta(arms, abtest.BanditOptions{Seed: s})
		require.NoError(t, err)
		return b
	}
	for run := range runs {
		seed := uint64(run) * 1000
		// Pooled: three replicas, each with its own bandit and Sync.
		var group []abtest.Bandit
		var syncs []*Sync
		for i := range 3 {
			s, err := New(newClient(t, srv.Addr), Options{ReplicaID: "r" + strconv.Itoa(i), Logger: quiet})
			require.NoError(t, err)
			b := newTS(seed + uint64(i) + 1)
			require.NoError(t, s.Bandit("ranker-"+strconv.Itoa(run), b))
			group, syncs = append(group, b), append(syncs, s)
		}
		flush := func() {
			for _, s := range syncs {
				require.NoError(t, s.Flush(ctx))
			}
		}
		pooled += play(t, group, rand.New(rand.NewPCG(seed, 1)), rounds, flushEvery, flush)
		flush() // the last flush of the first replicas missed the others' last rounds
		for _, b := range group {
			var pulls uint64
			for _, a := range b.Stats() {
				pulls += a.Pulls
			}
			require.Equal(t, uint64(3*rounds), pulls, "every replica's posterior holds every reward")
		}
		// One replica fed every reward: three plays per round.
		one := newTS(seed + 1)
		single += play(t, []abtest.Bandit{one, one, one}, rand.New(rand.NewPCG(seed, 1)), rounds, 0, nil)
		// Three replicas that do not pool.
		group = []abtest.Bandit{newTS(seed + 1), newTS(seed + 2), newTS(seed + 3)}
		isolated += play(t, group, rand.New(rand.NewPCG(seed, 1)), rounds, 0, nil)
	}
	pooled, single, isolated = pooled/runs, single/runs, isolated/runs
	t.Logf("best-arm share in the last quarter: pooled %.3f, single %.3f, isolated %.3f", pooled, single, isolated)
	// Seeded, so these numbers are fixed (0.769, 0.778, 0.575): pooling
	// through Redis, flushing every 5 rounds, is within 0.03 of one
	// replica fed everything, and not pooling costs 0.2.
	require.InDelta(t, single, pooled, 0.03)
	require.Greater(t, pooled, isolated+0.15)
}
