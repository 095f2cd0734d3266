package registry

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestActorFrom(t *testing.T) {
	ctx := context.Background()
	require.Equal(t, "fallback", ActorFrom(ctx, "fallback"))
	require.Equal(t, "ci@7", ActorFrom(WithActor(ctx, "ci@7"), "fallback"))
	require.Equal(t, "fallback", ActorFrom(WithActor(ctx, ""), "fallback"), "an empty actor is no actor")
}
