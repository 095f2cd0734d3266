package registry

import "context"

// ActorFrom returns the actor that WithActor put in ctx, or def when ctx
// carries none. Registries other than Store (an object-store registry in
// another package) call it to record the same actor in their audit logs.
func ActorFrom(ctx context.Context, def string) string { return actorFrom(ctx, def) }
