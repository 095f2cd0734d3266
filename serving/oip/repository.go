package oip

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/quiverml/quiver/serving"
)

// Repository is what the endpoints serve: the models by name, each at a
// default version and possibly at explicit versions. Models serves a fixed
// map, RegistryModels a registry's aliases; any other source (a router in
// front of several variants, models loaded on demand) fits by implementing
// it. Implementations are safe for concurrent use.
type Repository interface {
	// Names lists the names of the models served, sorted.
	Names(ctx context.Context) ([]string, error)
	// Model returns the model serving name at version; version "" means
	// the default version. An unknown name fails with an error matching
	// ErrModelNotFound, an unknown version of a known name with one
	// matching ErrVersionNotFound. It is called on every request, so it
	// should not load or allocate much.
	Model(ctx context.Context, name, version string) (serving.Model, error)
	// Metadata describes name at version for the metadata and readiness
	// endpoints, with the errors of Model. The inputs and outputs come
	// from the model's Info.
	Metadata(ctx context.Context, name, version string) (Metadata, error)
}

// Metadata describes one served model beyond its Info.
type Metadata struct {
	// Version is the version served at the requested version ("" when the
	// model is not versioned).
	Version string
	// Versions lists the versions that may be requested explicitly
	// (/v2/models/<name>/versions/<version>); empty when none may.
	Versions []string
	// Platform names the framework, as the protocol spells it
	// ("onnx_onnxv1"); empty when unknown.
	Platform string
	// Ready reports whether the model can serve a request now.
	Ready bool
}

// Models returns a Repository serving a fixed set of models, keyed by the
// name clients use. They are not versioned: only the default version
// exists, and an explicit version fails with ErrVersionNotFound. An answer
// still reports model_version when the model that answered is a registry
// alias (a registry.Handle, or a Batcher in front of one): the registry
// version that served it. Metadata reports an empty platform, since any
// engine may stand behind a serving.Model, and a model ready when its Info
// describes inputs or outputs (a registry alias with no loaded version
// describes neither).
//
// The map is copied; the models are not closed by the repository.
func Models(m map[string]serving.Model) Repository {
	s := &static{models: maps.Clone(m)}
	s.names = slices.Sorted(maps.Keys(s.models))
	return s
}

type static struct {
	models map[string]serving.Model
	names  []string
}

func (s *static) Names(context.Context) ([]string, error) {
	return slices.Clone(s.names), nil
}

func (s *static) Model(_ context.Context, name, version string) (serving.Model, error) {
	m, ok := s.models[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q is not served; the models are %s", ErrModelNotFound, name, listNames(s.names))
	}
	if version != "" {
		return nil, fmt.Errorf("%w: model %q is not versioned; leave /versions/%s out of the path", ErrVersionNotFound, name, version)
	}
	return m, nil
}

func (s *static) Metadata(ctx context.Context, name, version string) (Metadata, error) {
	m, err := s.Model(ctx, name, version)
	if err != nil {
		return Metadata{}, err
	}
	info := m.Info()
	return Metadata{Ready: len(info.Inputs)+len(info.Outputs) > 0}, nil
}

// listNames renders a few names for an error message.
func listNames(names []string) string {
	const most = 8
	if len(names) == 0 {
		return "none"
	}
	out := ""
	for i, n := range names {
		if i == most {
			return fmt.Sprintf("%s and %d more", out, len(names)-most)
		}
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%q", n)
	}
	return out
}
