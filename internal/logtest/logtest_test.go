package logtest

import (
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCountByLevelAndMessage(t *testing.T) {
	var r Recorder
	log := r.Logger().With("replica", "a")
	log.Warn("redis unavailable", "error", "refused")
	log.Warn("redis unavailable again")
	log.Info("redis unavailable") // another level
	log.Debug("ok")
	require.Equal(t, 2, r.Count(slog.LevelWarn, "redis unavailable"))
	require.Equal(t, 1, r.Count(slog.LevelInfo, "unavailable"))
	require.Equal(t, 1, r.Count(slog.LevelDebug, "ok"), "every level is kept")
	require.Zero(t, r.Count(slog.LevelError, ""))
}
