package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRun plays a shorter stream than the default (16,000 events, drift
// at 8,000, seed 1) through the whole composition and checks the bars of
// the program: the online model is back within 0.02 of its pre-drift AUC
// at most defaultWithin events after the drift, while the static model's
// AUC after the drift stays far below its own before.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	cfg := config{events: 16000, drift: 8000, every: 3000, within: defaultWithin, seed: 1}
	rep, err := simulate(cfg, &out)
	s := out.String()
	t.Log(s)
	require.NoError(t, err, s)
	require.NoError(t, rep.check())

	require.GreaterOrEqual(t, len(rep.pre), 3, "windows before the drift")
	require.GreaterOrEqual(t, len(rep.post), 3, "windows after the drift")
	pre := mean(rep.pre)
	require.Greater(t, pre, 0.9, "the stream is learnable")
	require.True(t, rep.recovered, "the online model came back")
	after := rep.recoveredAt - cfg.drift
	require.Positive(t, after)
	require.LessOrEqual(t, after, defaultWithin, "events after the drift until the online model was back")
	for i, st := range rep.postStatic {
		require.Less(t, st, mean(rep.preStatic)-0.3, "window %d after the drift: the static model stays down", i)
	}
	require.Greater(t, mean(rep.post), mean(rep.postStatic)+0.3, "after the drift the online model ranks far better than the static one")

	require.Contains(t, s, "<- drift")
	require.Contains(t, s, "canary: promote")
	require.Contains(t, s, "the online model was back within 0.02 of its pre-drift AUC")
	require.Contains(t, s, "predictions 16000")

	// The bar can fail: the same run judged against a bound it missed.
	strict := *rep
	strict.within = after - 1
	require.ErrorContains(t, strict.check(), "want at most")
	stayedUp := *rep
	stayedUp.postStatic = rep.preStatic
	require.ErrorContains(t, stayedUp.check(), "static model")
	never := *rep
	never.recovered = false
	require.ErrorContains(t, never.check(), "did not recover")
}

// TestFlags refuses bad flags before anything runs.
func TestFlags(t *testing.T) {
	var out bytes.Buffer
	for _, args := range [][]string{{"-events", "0"}, {"-every", "0"}, {"-within", "0"}, {"-drift", "-1"}, {"-bogus"}} {
		require.Error(t, run(args, &out), "%v", args)
	}
}
