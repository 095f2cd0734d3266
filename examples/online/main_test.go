package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRun plays a shorter stream than the default (16,000 events, drift
// at 8,000) through the whole composition: run fails unless the online
// model recovers and the static one stays down.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run([]string{"-events", "16000", "-drift", "8000", "-every", "3000"}, &out), out.String())
	s := out.String()
	t.Log(s)
	require.Contains(t, s, "<- drift")
	require.Contains(t, s, "canary: promote")
	require.Contains(t, s, "the online model was back within 0.02 of its pre-drift AUC")
	require.Contains(t, s, "predictions 16000")

	require.Error(t, run([]string{"-events", "0"}, &out))
	require.Error(t, run([]string{"-bogus"}, &out))
}
