package abtest

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

var arms3 = []string{"a", "b", "c"}

type banditCase struct {
	name string
	new  func(seed uint64) (Bandit, error)
	// reward draws a reward for arm i; arm 2 ("c") is the best.
	reward func(r *rand.Rand, i int) float64
}

func bernoulli(r *rand.Rand, i int) float64 {
	p := []float64{0.04, 0.05, 0.08}[i]
	if r.Float64() < p {
		return 1
	}
	return 0
}

func gaussian(r *rand.Rand, i int) float64 {
	return []float64{1.0, 1.2, 1.5}[i] + r.NormFloat64()
}

func banditCases() []banditCase {
	return []banditCase{
		{"epsilon-greedy", func(s uint64) (Bandit, error) { return NewEpsilonGreedy(arms3, BanditOptions{Seed: s}) }, bernoulli},
		{"ucb1", func(s uint64) (Bandit, error) { return NewUCB1(arms3, BanditOptions{Seed: s}) }, bernoulli},
		{"thompson-beta", func(s uint64) (Bandit, error) { return NewThompsonBeta(arms3, BanditOptions{Seed: s}) }, bernoulli},
		{"thompson-gaussian", func(s uint64) (Bandit, error) { return NewThompsonGaussian(arms3, BanditOptions{Seed: s}) }, gaussian},
	}
}

func indexOf(arms []string, a string) int {
	for i, x := range arms {
		if x == a {
			return i
		}
	}
	return -1
}

// run plays n rounds and returns how often each arm was played in the last
// quarter.
func run(t *testing.T, b Bandit, reward func(*rand.Rand, int) float64, env *rand.Rand, n int) []int {
	t.Helper()
	late := make([]int, len(b.Arms()))
	for i := range n {
		arm := b.Select()
		k := indexOf(b.Arms(), arm)
		require.GreaterOrEqual(t, k, 0)
		require.NoError(t, b.Update(arm, reward(env, k)))
		if i >= n*3/4 {
			late[k]++
		}
	}
	return late
}

func TestBanditsConvergeToBestArm(t *testing.T) {
	for _, tc := range banditCases() {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.new(7)
			require.NoError(t, err)
			const n = 20000
			late := run(t, b, tc.reward, rand.New(rand.NewPCG(42, 43)), n)
			share := float64(late[2]) / float64(n/4)
			require.Greater(t, share, 0.6, "best arm share in the last quarter: %v", late)
			st := b.Stats()
			require.Equal(t, uint64(n), st[0].Pulls+st[1].Pulls+st[2].Pulls)
			require.Equal(t, "c", st[2].Arm)
		})
	}
}

func TestBanditsDeterministicForSeed(t *testing.T) {
	for _, tc := range banditCases() {
		t.Run(tc.name, func(t *testing.T) {
			play := func() []string {
				b, err := tc.new(99)
				require.NoError(t, err)
				env := rand.New(rand.NewPCG(1, 1))
				var seq []string
				for range 500 {
					a := b.Select()
					seq = append(seq, a)
					require.NoError(t, b.Update(a, tc.reward(env, indexOf(arms3, a))))
				}
				return seq
			}
			require.Equal(t, play(), play())
		})
	}
}

func TestBanditSnapshotRestoreContinuesIdentically(t *testing.T) {
	for _, tc := range banditCases() {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.new(5)
			require.NoError(t, err)
			env := rand.New(rand.NewPCG(3, 3))
			run(t, b, tc.reward, env, 300)
			snap, err := b.Snapshot()
			require.NoError(t, err)

			c, err := tc.new(12345) // different seed: Restore brings the generator state
			require.NoError(t, err)
			require.NoError(t, c.Restore(snap))
			require.Equal(t, b.Stats(), c.Stats())
			for range 200 {
				a1, a2 := b.Select(), c.Select()
				require.Equal(t, a1, a2)
				r := tc.reward(env, indexOf(arms3, a1))
				require.NoError(t, b.Update(a1, r))
				require.NoError(t, c.Update(a2, r))
			}
			s1, _ := b.Snapshot()
			s2, _ := c.Snapshot()
			require.JSONEq(t, string(s1), string(s2))
		})
	}
}

func TestBanditRestoreRejectsBadSnapshots(t *testing.T) {
	b, err := NewThompsonBeta(arms3, BanditOptions{Seed: 1})
	require.NoError(t, err)
	require.NoError(t, b.Update("a", 1))
	good, err := b.Snapshot()
	require.NoError(t, err)
	before := b.Stats()

	edit := func(f func(d *snapshotDoc)) []byte {
		var d snapshotDoc
		require.NoError(t, json.Unmarshal(good, &d))
		f(&d)
		out, err := json.Marshal(d)
		require.NoError(t, err)
		return out
	}
	tests := []struct {
		name string
		data []byte
		msg  string
	}{
		{"empty", nil, "EOF"},
		{"not json", []byte("{"), "unexpected EOF"},
		{"trailing", append(append([]byte{}, good...), []byte(" {}")...), "trailing data"},
		{"unknown field", []byte(`{"format":"quiver.abtest.bandit","version":1,"extra":1}`), "unknown field"},
		{"format", edit(func(d *snapshotDoc) { d.Format = "x" }), "format"},
		{"version", edit(func(d *snapshotDoc) { d.Version = 2 }), "version 2"},
		{"kind", edit(func(d *snapshotDoc) { d.Kind = KindUCB1 }), `"ucb1" bandit`},
		{"arm count", edit(func(d *snapshotDoc) { d.Arms = d.Arms[:2] }), "2 arms, want 3"},
		{"arm name", edit(func(d *snapshotDoc) { d.Arms[1].Name = "z" }), `arm 1 is "z"`},
		{"negative m2", edit(func(d *snapshotDoc) { d.Arms[0].M2 = -1 }), "m2 >= 0"},
		{"mean out of range", edit(func(d *snapshotDoc) { d.Arms[0].Mean = 2 }), "want [0, 1]"},
		{"no pulls but mean", edit(func(d *snapshotDoc) { d.Arms[1].Mean = 0.5 }), "no pulls"},
		{"prior", edit(func(d *snapshotDoc) { d.Params.PriorAlpha = -1 }), "prior alpha"},
		{"rng", edit(func(d *snapshotDoc) { d.RNG = []byte("junk") }), "random state"},
		{"nan", []byte(`{"format":"quiver.abtest.bandit","version":1,"kind":"thompson-beta","arms":[{"name":"a","pulls":1,"mean":NaN}]}`), "invalid character"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := b.Restore(tc.data)
			require.ErrorIs(t, err, ErrSnapshot)
			require.Contains(t, err.Error(), tc.msg)
			require.Equal(t, before, b.Stats(), "state intact after a failed restore")
		})
	}
}

func TestBanditBadInput(t *testing.T) {
	for _, tc := range banditCases() {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.new(0)
			require.NoError(t, err)
			b, _ := tc.new(0)
			require.ErrorIs(t, b.Update("zzz", 1), ErrUnknownVariant)
			require.ErrorIs(t, b.Update("a", math.NaN()), ErrReward)
			require.ErrorIs(t, b.Update("a", math.Inf(-1)), ErrReward)
			for _, s := range b.Stats() {
				require.Zero(t, s.Pulls)
			}
		})
	}
	tb, _ := NewThompsonBeta(arms3, BanditOptions{})
	require.ErrorIs(t, tb.Update("a", 1.5), ErrReward)
	require.ErrorIs(t, tb.Update("a", -0.1), ErrReward)
	require.NoError(t, tb.Update("a", 0.5))

	ctors := []struct {
		name string
		mk   func() (Bandit, error)
		want error
	}{
		{"no arms", func() (Bandit, error) { return NewEpsilonGreedy(nil, BanditOptions{}) }, ErrConfig},
		{"duplicate arm", func() (Bandit, error) { return NewUCB1([]string{"a", "a"}, BanditOptions{}) }, ErrDuplicateVariant},
		{"empty arm", func() (Bandit, error) { return NewThompsonBeta([]string{""}, BanditOptions{}) }, ErrConfig},
		{"epsilon > 1", func() (Bandit, error) { return NewEpsilonGreedy(arms3, BanditOptions{Epsilon: 2}) }, ErrConfig},
		{"negative alpha", func() (Bandit, error) { return NewThompsonBeta(arms3, BanditOptions{PriorAlpha: -1}) }, ErrConfig},
		{"negative variance", func() (Bandit, error) { return NewThompsonGaussian(arms3, BanditOptions{PriorVariance: -1}) }, ErrConfig},
		{"infinite mean", func() (Bandit, error) { return NewThompsonGaussian(arms3, BanditOptions{PriorMean: math.Inf(1)}) }, ErrConfig},
	}
	for _, c := range ctors {
		_, err := c.mk()
		require.ErrorIs(t, err, c.want, c.name)
	}
}

func TestEpsilonGreedyGreedyAndUCBOrder(t *testing.T) {
	g, err := NewEpsilonGreedy(arms3, BanditOptions{Epsilon: -1})
	require.NoError(t, err)
	// Untried arms first, in order, then the best mean forever.
	for _, want := range arms3 {
		a := g.Select()
		require.Equal(t, want, a)
		require.NoError(t, g.Update(a, map[string]float64{"a": 0.1, "b": 0.9, "c": 0.5}[a]))
	}
	for range 50 {
		require.Equal(t, "b", g.Select())
	}

	u, err := NewUCB1([]string{"x", "y"}, BanditOptions{})
	require.NoError(t, err)
	require.Equal(t, "x", u.Select())
	require.NoError(t, u.Update("x", 1))
	require.Equal(t, "y", u.Select())
	require.NoError(t, u.Update("y", 0))
	// Scores: x = 1 + sqrt(2 ln 2 / 1) = 2.177, y = 0 + 1.177: x.
	require.Equal(t, "x", u.Select())
	require.Equal(t, KindUCB1, u.Kind())
}

func TestBanditConcurrentUse(t *testing.T) {
	for _, tc := range banditCases() {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.new(1)
			require.NoError(t, err)
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					env := rand.New(rand.NewPCG(uint64(g), 0))
					for range 500 {
						a := b.Select()
						_ = b.Update(a, tc.reward(env, indexOf(arms3, a)))
						if g == 0 {
							_, _ = b.Snapshot()
						}
					}
				}()
			}
			wg.Wait()
			var total uint64
			for _, s := range b.Stats() {
				total += s.Pulls
			}
			require.Equal(t, uint64(2000), total)
		})
	}
}

func TestSampleBetaAndGammaMoments(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	tests := []struct{ a, b float64 }{{1, 1}, {2, 5}, {0.5, 0.5}, {30, 70}}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.a, tc.b), func(t *testing.T) {
			const n = 20000
			var w welford
			for range n {
				x := sampleBeta(r, tc.a, tc.b)
				require.True(t, x >= 0 && x <= 1)
				w.add(x)
			}
			mean := tc.a / (tc.a + tc.b)
			variance := tc.a * tc.b / ((tc.a + tc.b) * (tc.a + tc.b) * (tc.a + tc.b + 1))
			// Standard error of the mean is sqrt(variance/n); allow 5 of them.
			require.InDelta(t, mean, w.mean, 5*math.Sqrt(variance/n))
			require.InDelta(t, variance, w.variance(), 0.1*variance)
		})
	}
}

func TestBanditAssigner(t *testing.T) {
	b, err := NewThompsonBeta([]string{"x", "y"}, BanditOptions{Seed: 1})
	require.NoError(t, err)
	a, err := NewBanditAssigner("bandit", b)
	require.NoError(t, err)
	require.Equal(t, []string{"x", "y"}, a.Variants())
	require.Equal(t, "bandit", a.Name())
	require.Same(t, b, a.Bandit().(*ThompsonBeta))
	got, err := a.Assign("u", nil)
	require.NoError(t, err)
	require.True(t, got.Enrolled)
	require.Equal(t, ReasonBandit, got.Reason)
	require.Equal(t, got.Variant, a.Variants()[got.Index])
	_, err = a.Assign("", nil)
	require.ErrorIs(t, err, ErrEmptyUnit)
	_, err = NewBanditAssigner("", b)
	require.ErrorIs(t, err, ErrConfig)
}

func FuzzBanditRestore(f *testing.F) {
	for _, tc := range banditCases() {
		b, err := tc.new(1)
		require.NoError(f, err)
		for i := range 10 {
			_ = b.Update(arms3[i%3], float64(i%2))
		}
		snap, err := b.Snapshot()
		require.NoError(f, err)
		f.Add(snap)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"format":"quiver.abtest.bandit","version":1,"kind":"ucb1","arms":[]}`))
	f.Add([]byte("\x00\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, tc := range banditCases() {
			b, err := tc.new(2)
			require.NoError(t, err)
			before := b.Stats()
			if err := b.Restore(data); err != nil {
				require.ErrorIs(t, err, ErrSnapshot)
				require.Equal(t, before, b.Stats())
				continue
			}
			// A restored bandit works and re-encodes to an equivalent state.
			for _, s := range b.Stats() {
				require.False(t, math.IsNaN(s.Mean))
			}
			arm := b.Select()
			require.Contains(t, arms3, arm)
			snap, err := b.Snapshot()
			require.NoError(t, err)
			c, _ := tc.new(3)
			require.NoError(t, c.Restore(snap))
			require.Equal(t, b.Stats(), c.Stats())
		}
	})
}

func TestBanditExtremeRewardsKeepStateFinite(t *testing.T) {
	for _, tc := range banditCases() {
		if tc.name == KindThompsonBeta { // accepts [0, 1] only
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.new(1)
			require.NoError(t, err)
			for i := range 1000 {
				huge := 1e308
				if i%2 == 1 {
					huge = -huge
				}
				require.ErrorIs(t, b.Update("a", huge), ErrReward, "reward %g", huge)
				edge := MaxReward
				if i%2 == 1 {
					edge = -edge
				}
				require.NoError(t, b.Update("b", edge))
			}
			stats := b.Stats()
			require.Zero(t, stats[0].Pulls, "rejected rewards leave the arm untouched")
			require.Equal(t, uint64(1000), stats[1].Pulls)
			for _, s := range stats {
				require.False(t, math.IsNaN(s.Mean) || math.IsInf(s.Mean, 0), "arm %s mean %v", s.Arm, s.Mean)
				require.False(t, math.IsNaN(s.Variance) || math.IsInf(s.Variance, 0), "arm %s variance %v", s.Arm, s.Variance)
			}

			snap, err := b.Snapshot()
			require.NoError(t, err)
			restored, err := tc.new(2)
			require.NoError(t, err)
			require.NoError(t, restored.Restore(snap))
			require.Equal(t, b.Stats(), restored.Stats())
			for range 10 {
				require.Equal(t, b.Select(), restored.Select())
			}
		})
	}
}

func TestBanditRestoreRejectsOutOfRangeMean(t *testing.T) {
	b, err := NewEpsilonGreedy(arms3, BanditOptions{})
	require.NoError(t, err)
	require.NoError(t, b.Update("a", 1))
	snap, err := b.Snapshot()
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(snap, &doc))
	doc["arms"].([]any)[0].(map[string]any)["mean"] = 1e300
	bad, err := json.Marshal(doc)
	require.NoError(t, err)
	require.ErrorIs(t, b.Restore(bad), ErrSnapshot)
	require.Equal(t, 1.0, b.Stats()[0].Mean, "state unchanged")
}
