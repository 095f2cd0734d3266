package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// AliasesFile is the name of a model's alias table, beside its versions.
const AliasesFile = "aliases.json"

// maxAliasesSize bounds what is read from disk before decoding.
const maxAliasesSize = 4 << 20

// Alias is a movable name (production, staging, canary) for one version of
// a model.
type Alias struct {
	Name string `json:"name"`
	// Version is the version the alias points at.
	Version int64 `json:"version"`
	// Previous holds the versions it pointed at before, oldest first;
	// Rollback moves the alias back to the last one.
	Previous []int64 `json:"previous,omitempty"`
	// Updated is when the alias last moved.
	Updated time.Time `json:"updated"`
}

type aliasFile struct {
	FormatVersion int     `json:"format_version"`
	Model         string  `json:"model"`
	Aliases       []Alias `json:"aliases"`
}

// DecodeAliases parses and validates a model's alias table. Every failure
// matches ErrCorrupt.
func DecodeAliases(data []byte) (model string, aliases []Alias, err error) {
	if len(data) > maxAliasesSize {
		return "", nil, fmt.Errorf("%w: alias table is %d bytes; want at most %d", ErrCorrupt, len(data), maxAliasesSize)
	}
	var af aliasFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&af); err != nil {
		return "", nil, fmt.Errorf("%w: alias table: %v", ErrCorrupt, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", nil, fmt.Errorf("%w: alias table: trailing data after the JSON object", ErrCorrupt)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: alias table: "+format, append([]any{ErrCorrupt}, args...)...)
	}
	if af.FormatVersion != 1 {
		return "", nil, bad("format_version %d; want 1", af.FormatVersion)
	}
	if err := ValidName(af.Model); err != nil {
		return "", nil, bad("model: %v", err)
	}
	seen := make(map[string]bool, len(af.Aliases))
	for _, a := range af.Aliases {
		if err := checkAlias(a.Name); err != nil {
			return "", nil, bad("%v", err)
		}
		if seen[a.Name] {
			return "", nil, bad("alias %q listed twice", a.Name)
		}
		seen[a.Name] = true
		if a.Version <= 0 {
			return "", nil, bad("alias %q: version %d; want > 0", a.Name, a.Version)
		}
		for _, p := range a.Previous {
			if p <= 0 {
				return "", nil, bad("alias %q: previous version %d; want > 0", a.Name, p)
			}
		}
	}
	slices.SortFunc(af.Aliases, func(a, b Alias) int { return cmpString(a.Name, b.Name) })
	return af.Model, af.Aliases, nil
}

func cmpString(a, b string) int { return strings.Compare(a, b) }

func encodeAliases(model string, aliases []Alias) ([]byte, error) {
	slices.SortFunc(aliases, func(a, b Alias) int { return cmpString(a.Name, b.Name) })
	b, err := json.MarshalIndent(aliasFile{FormatVersion: 1, Model: model, Aliases: aliases}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// readAliases reads <modelDir>/aliases.json; a missing file is an empty
// table.
func readAliases(modelDir, model string) ([]Alias, error) {
	f, err := os.Open(filepath.Join(modelDir, AliasesFile))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxAliasesSize+1))
	if err != nil {
		return nil, err
	}
	m, aliases, err := DecodeAliases(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", model, err)
	}
	if m != model {
		return nil, fmt.Errorf("%w: %s: alias table names model %q", ErrCorrupt, model, m)
	}
	return aliases, nil
}
