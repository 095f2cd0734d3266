package s3

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/quiverml/quiver/registry"
)

// Size bounds of what is read before decoding; registry.Store applies the
// same to its files.
const (
	maxManifestSize = 4 << 20
	maxAliasesSize  = 4 << 20
	maxAuditSize    = 1 << 20
)

// encodeManifest writes a manifest as registry.Store does, so that a copy of
// the bucket is a folder registry; registry.DecodeManifest reads it back.
func encodeManifest(v registry.Version) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// decodeManifest decodes and validates a manifest and checks that it
// belongs where it was found.
func decodeManifest(data []byte, model string, n int64) (registry.Version, error) {
	v, err := registry.DecodeManifest(data)
	if err != nil {
		return registry.Version{}, err
	}
	if v.Model != model || v.Number != n {
		return registry.Version{}, fmt.Errorf("%w: manifest of %s/%d names %s/%d", registry.ErrCorrupt, model, n, v.Model, v.Number)
	}
	return v, nil
}

// aliasFile is the alias table's JSON layout, the one registry.Store
// writes and registry.DecodeAliases reads.
type aliasFile struct {
	FormatVersion int              `json:"format_version"`
	Model         string           `json:"model"`
	Aliases       []registry.Alias `json:"aliases"`
}

func encodeAliases(model string, aliases []registry.Alias) ([]byte, error) {
	aliases = slices.Clone(aliases)
	slices.SortFunc(aliases, func(a, b registry.Alias) int { return strings.Compare(a.Name, b.Name) })
	b, err := json.MarshalIndent(aliasFile{FormatVersion: 1, Model: model, Aliases: aliases}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// decodeAliases decodes an alias table and checks that it is model's.
func decodeAliases(data []byte, model string) ([]registry.Alias, error) {
	m, aliases, err := registry.DecodeAliases(data)
	if err != nil {
		return nil, err
	}
	if m != model {
		return nil, fmt.Errorf("%w: alias table of %s names model %q", registry.ErrCorrupt, model, m)
	}
	return aliases, nil
}

// cloneVersion returns a deep copy, so callers may modify what they get.
func cloneVersion(v registry.Version) registry.Version {
	v.Files = slices.Clone(v.Files)
	v.Signature.Inputs = cloneSpecs(v.Signature.Inputs)
	v.Signature.Outputs = cloneSpecs(v.Signature.Outputs)
	v.Metrics = maps.Clone(v.Metrics)
	v.Tags = maps.Clone(v.Tags)
	return v
}

func cloneSpecs(in []registry.TensorSpec) []registry.TensorSpec {
	if in == nil {
		return nil
	}
	out := make([]registry.TensorSpec, len(in))
	for i, t := range in {
		t.Shape = slices.Clone(t.Shape)
		out[i] = t
	}
	return out
}

func cloneAliases(in []registry.Alias) []registry.Alias {
	if in == nil {
		return nil
	}
	out := make([]registry.Alias, len(in))
	for i, a := range in {
		a.Previous = slices.Clone(a.Previous)
		out[i] = a
	}
	return out
}

// sameContent reports whether two manifests describe the same published
// bytes: the same version (number and publish time) with the same files.
func sameContent(a, b registry.Version) bool {
	return a.Model == b.Model && a.Number == b.Number && a.Created.Equal(b.Created) &&
		a.Entry == b.Entry && slices.Equal(a.Files, b.Files)
}
