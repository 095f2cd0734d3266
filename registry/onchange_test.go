package registry

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// OnChange sees every change, after it is made, with its audit event; a
// refused change is not reported.
func TestOnChange(t *testing.T) {
	ctx := context.Background()
	var seen []AuditEvent
	var s *Store
	s, err := Open(t.TempDir(), Options{Actor: "ci", OnChange: func(e AuditEvent) {
		// Called once the change is visible to readers.
		if e.Action == ActionSetAlias {
			v, err := s.Resolve(ctx, e.Model, e.Alias)
			require.NoError(t, err)
			require.Equal(t, e.Version, v.Number)
		}
		seen = append(seen, e)
	}})
	require.NoError(t, err)
	publishText(t, s, "m", "one")
	publishText(t, s, "m", "two")
	require.NoError(t, s.SetAlias(ctx, "m", "production", 1))
	require.NoError(t, s.SetAlias(ctx, "m", "production", 2))
	require.NoError(t, s.Tag(ctx, "m", 2, "owner", "ranking"))
	require.Error(t, s.SetAlias(ctx, "m", "production", 9), "no such version")
	_, err = s.Rollback(ctx, "m", "production")
	require.NoError(t, err)

	actions := make([]Action, len(seen))
	for i, e := range seen {
		actions[i] = e.Action
		require.Equal(t, "m", e.Model)
		require.Equal(t, "ci", e.Actor)
		require.False(t, e.Time.IsZero())
	}
	require.Equal(t, []Action{ActionPublish, ActionPublish, ActionSetAlias, ActionSetAlias, ActionTag, ActionRollback}, actions)
	require.Equal(t, "1", seen[3].Old)
	require.Equal(t, "2", seen[3].New)
	audit, err := s.Audit(ctx)
	require.NoError(t, err)
	require.Equal(t, audit, seen, "the events of the audit log")
}
