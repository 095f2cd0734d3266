package registry

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/quiverml/quiver/internal/atomicfile"
)

// updateManifest rewrites one version's manifest atomically under the write
// lock. change returns false when nothing needs writing.
func (s *Store) updateManifest(ctx context.Context, model string, number int64, change func(v *Version) (bool, error)) (Version, error) {
	dir, err := s.Dir(model, number)
	if err != nil {
		return Version{}, err
	}
	if err := ctx.Err(); err != nil {
		return Version{}, err
	}
	v, err := readManifest(dir, model, number)
	if os.IsNotExist(err) {
		return Version{}, fmt.Errorf("%w: %s version %d", ErrNotFound, model, number)
	}
	if err != nil {
		return Version{}, err
	}
	v.Tags = maps.Clone(v.Tags)
	changed, err := change(&v)
	if err != nil || !changed {
		return v, err
	}
	data, err := encodeManifest(v)
	if err != nil {
		return Version{}, err
	}
	if entries, err := os.ReadDir(dir); err == nil {
		for _, e := range entries {
			if isManifestTemp(e.Name()) {
				_ = os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
	return v, atomicfile.WriteFile(filepath.Join(dir, ManifestFile), data, 0o644)
}

// Tag sets a free label on a version; key follows ValidName, value is any
// text.
func (s *Store) Tag(ctx context.Context, model string, number int64, key, value string) error {
	if err := checkName("tag", key); err != nil {
		return err
	}
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	var old string
	_, err = s.updateManifest(ctx, model, number, func(v *Version) (bool, error) {
		old = v.Tags[key]
		if v.Tags == nil {
			v.Tags = map[string]string{}
		}
		v.Tags[key] = value
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("registry: tag %s/%d: %w", model, number, err)
	}
	s.log.Info("registry: tagged", "model", model, "version", number, "key", key, "value", value)
	return s.audit(ctx, AuditEvent{Action: ActionTag, Model: model, Version: number, Key: key, Old: old, New: value})
}

// Untag removes a label from a version; removing a missing label is not an
// error and is not audited.
func (s *Store) Untag(ctx context.Context, model string, number int64, key string) error {
	if err := checkName("tag", key); err != nil {
		return err
	}
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	var old string
	var had bool
	_, err = s.updateManifest(ctx, model, number, func(v *Version) (bool, error) {
		old, had = v.Tags[key]
		delete(v.Tags, key)
		return had, nil
	})
	if err != nil {
		return fmt.Errorf("registry: untag %s/%d: %w", model, number, err)
	}
	if !had {
		return nil
	}
	return s.audit(ctx, AuditEvent{Action: ActionUntag, Model: model, Version: number, Key: key, Old: old})
}

// Archive marks a version archived: it stays on disk and can be fetched,
// but it is no longer "latest", cannot be aliased and is not loaded by the
// latest-N policy. Archiving a version an alias points at fails with
// ErrAliased.
func (s *Store) Archive(ctx context.Context, model string, number int64) error {
	return s.setArchived(ctx, model, number, true)
}

// Unarchive reverses Archive.
func (s *Store) Unarchive(ctx context.Context, model string, number int64) error {
	return s.setArchived(ctx, model, number, false)
}

func (s *Store) setArchived(ctx context.Context, model string, number int64, archived bool) error {
	action := ActionArchive
	if !archived {
		action = ActionUnarchive
	}
	if err := checkName("model", model); err != nil {
		return err
	}
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if archived {
		if err := s.refuseAliased(model, number); err != nil {
			return fmt.Errorf("registry: archive: %w", err)
		}
	}
	changed := false
	_, err = s.updateManifest(ctx, model, number, func(v *Version) (bool, error) {
		changed = v.Archived != archived
		v.Archived = archived
		return changed, nil
	})
	if err != nil {
		return fmt.Errorf("registry: %s %s/%d: %w", action, model, number, err)
	}
	if !changed {
		return nil
	}
	s.log.Info("registry: "+string(action), "model", model, "version", number)
	return s.audit(ctx, AuditEvent{Action: action, Model: model, Version: number,
		Old: strconv.FormatBool(!archived), New: strconv.FormatBool(archived)})
}

// refuseAliased fails with ErrAliased when an alias points at the version.
func (s *Store) refuseAliased(model string, number int64) error {
	aliases, err := readAliases(filepath.Join(s.root, model), model)
	if err != nil {
		return err
	}
	for _, a := range aliases {
		if a.Version == number {
			return fmt.Errorf("%w: %s version %d is %q; move the alias first", ErrAliased, model, number, a.Name)
		}
	}
	return nil
}

// Delete removes a version. It fails with ErrAliased while an alias points
// at it. The directory is first renamed away (one atomic step that readers
// see), then removed; the version is also dropped from alias histories.
func (s *Store) Delete(ctx context.Context, model string, number int64) error {
	dir, err := s.Dir(model, number)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return fmt.Errorf("%w: %s version %d", ErrNotFound, model, number)
	}
	modelDir := filepath.Join(s.root, model)
	aliases, err := readAliases(modelDir, model)
	if err != nil {
		return fmt.Errorf("registry: delete %s/%d: %w", model, number, err)
	}
	pruned := false
	for i, a := range aliases {
		if a.Version == number {
			return fmt.Errorf("registry: delete: %w: %s version %d is %q; move the alias first", ErrAliased, model, number, a.Name)
		}
		if slices.Contains(a.Previous, number) {
			aliases[i].Previous = slices.DeleteFunc(slices.Clone(a.Previous), func(p int64) bool { return p == number })
			pruned = true
		}
	}
	trash := tempName(modelDir, "delete")
	if err := os.Rename(dir, trash); err != nil {
		return fmt.Errorf("registry: delete %s/%d: %w", model, number, err)
	}
	if err := atomicfile.SyncDir(modelDir); err != nil {
		return fmt.Errorf("registry: delete %s/%d: %w", model, number, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		s.log.Warn("registry: leftover of a deleted version", "path", trash, "error", err)
	}
	if pruned {
		if err := s.writeAliases(modelDir, model, aliases); err != nil {
			return fmt.Errorf("registry: delete %s/%d: %w", model, number, err)
		}
	}
	s.log.Info("registry: deleted", "model", model, "version", number)
	return s.audit(ctx, AuditEvent{Action: ActionDelete, Model: model, Version: number, Old: strconv.FormatInt(number, 10)})
}

func (s *Store) writeAliases(modelDir, model string, aliases []Alias) error {
	data, err := encodeAliases(model, aliases)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(modelDir, AliasesFile), data, 0o644)
}

// MoveOptions configures an alias move (SetAlias, Rollback). The zero value
// refuses a move that would break callers.
type MoveOptions struct {
	// Force moves the alias even when the signature of the version it moves
	// to is incompatible with that of the version it points at (see
	// CheckCompatible), or when the current version's manifest cannot be
	// read to compare them. A forced incompatible move is logged as a
	// warning naming the differences.
	Force bool
}

func moveOptions(opts []MoveOptions) (MoveOptions, error) {
	switch len(opts) {
	case 0:
		return MoveOptions{}, nil
	case 1:
		return opts[0], nil
	}
	return MoveOptions{}, fmt.Errorf("%w: %d MoveOptions; want at most one", ErrBadInput, len(opts))
}

// checkMove refuses, with ErrIncompatible, to move alias from version cur to
// the version next unless forced. A cur of 0 (a new alias) is always allowed.
func (s *Store) checkMove(ctx context.Context, model, alias string, cur int64, next Version, opts MoveOptions) error {
	if cur == 0 || cur == next.Number {
		return nil
	}
	from, err := s.Get(ctx, model, cur)
	if err == nil {
		err = CheckCompatible(from.Signature, next.Signature)
	} else {
		err = fmt.Errorf("reading version %d to compare signatures: %w", cur, err)
	}
	if err == nil {
		return nil
	}
	if opts.Force {
		s.log.Warn("registry: alias forced to an incompatible version", "model", model, "alias", alias, "from", cur, "version", next.Number, "error", err)
		return nil
	}
	return fmt.Errorf("version %d -> %d: %w; MoveOptions{Force: true} moves it anyway", cur, next.Number, err)
}

// SetAlias points alias at a version, creating the alias or moving it; the
// version it pointed at before is remembered for Rollback. The version must
// exist and not be archived. Moving an alias to a version whose signature
// is incompatible with the current one's (CheckCompatible) fails with
// ErrIncompatible and leaves the alias where it was, unless opts (at most
// one) has Force set.
func (s *Store) SetAlias(ctx context.Context, model, alias string, number int64, opts ...MoveOptions) error {
	if err := checkAlias(alias); err != nil {
		return err
	}
	mo, err := moveOptions(opts)
	if err != nil {
		return err
	}
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	v, err := s.Get(ctx, model, number)
	if err != nil {
		return fmt.Errorf("registry: set alias %s/%s: %w", model, alias, err)
	}
	if v.Archived {
		return fmt.Errorf("registry: set alias %s/%s: %w: version %d; unarchive it first", model, alias, ErrArchived, number)
	}
	modelDir := filepath.Join(s.root, model)
	aliases, err := readAliases(modelDir, model)
	if err != nil {
		return fmt.Errorf("registry: set alias %s/%s: %w", model, alias, err)
	}
	var old int64
	i := slices.IndexFunc(aliases, func(a Alias) bool { return a.Name == alias })
	if i < 0 {
		aliases = append(aliases, Alias{Name: alias})
		i = len(aliases) - 1
	}
	a := &aliases[i]
	old = a.Version
	if old == number {
		return nil
	}
	if err := s.checkMove(ctx, model, alias, old, v, mo); err != nil {
		return fmt.Errorf("registry: set alias %s/%s: %w", model, alias, err)
	}
	if old != 0 {
		a.Previous = append(slices.Clone(a.Previous), old)
		if len(a.Previous) > s.opts.AliasHistory {
			a.Previous = a.Previous[len(a.Previous)-s.opts.AliasHistory:]
		}
	}
	a.Version = number
	a.Updated = s.opts.Now().UTC()
	if err := s.writeAliases(modelDir, model, aliases); err != nil {
		return fmt.Errorf("registry: set alias %s/%s: %w", model, alias, err)
	}
	s.log.Info("registry: alias moved", "model", model, "alias", alias, "from", old, "version", number)
	return s.audit(ctx, AuditEvent{Action: ActionSetAlias, Model: model, Alias: alias, Version: number,
		Old: versionString(old), New: versionString(number)})
}

func versionString(n int64) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatInt(n, 10)
}

// Rollback moves alias back to the version it pointed at before the last
// move, skipping earlier versions that were since deleted or archived, and
// returns that version. ErrNoHistory means there is none to go back to.
// Like SetAlias, it fails with ErrIncompatible, leaving the alias and its
// history as they were, when that version's signature is incompatible with
// the current one's, unless opts (at most one) has Force set.
func (s *Store) Rollback(ctx context.Context, model, alias string, opts ...MoveOptions) (int64, error) {
	if err := checkAlias(alias); err != nil {
		return 0, err
	}
	mo, err := moveOptions(opts)
	if err != nil {
		return 0, err
	}
	if err := checkName("model", model); err != nil {
		return 0, err
	}
	unlock, err := s.lock()
	if err != nil {
		return 0, err
	}
	defer unlock()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	modelDir := filepath.Join(s.root, model)
	aliases, err := readAliases(modelDir, model)
	if err != nil {
		return 0, fmt.Errorf("registry: rollback %s/%s: %w", model, alias, err)
	}
	i := slices.IndexFunc(aliases, func(a Alias) bool { return a.Name == alias })
	if i < 0 {
		return 0, fmt.Errorf("registry: rollback: %w: %s alias %q", ErrNotFound, model, alias)
	}
	a := &aliases[i]
	prev := slices.Clone(a.Previous)
	var to int64
	var target Version
	for len(prev) > 0 {
		cand := prev[len(prev)-1]
		prev = prev[:len(prev)-1]
		if v, err := s.Get(ctx, model, cand); err == nil && !v.Archived {
			to, target = cand, v
			break
		}
	}
	if to == 0 {
		return 0, fmt.Errorf("registry: rollback: %w: %s alias %q points at %d", ErrNoHistory, model, alias, a.Version)
	}
	if err := s.checkMove(ctx, model, alias, a.Version, target, mo); err != nil {
		return 0, fmt.Errorf("registry: rollback %s/%s: %w", model, alias, err)
	}
	old := a.Version
	a.Version, a.Previous, a.Updated = to, prev, s.opts.Now().UTC()
	if err := s.writeAliases(modelDir, model, aliases); err != nil {
		return 0, fmt.Errorf("registry: rollback %s/%s: %w", model, alias, err)
	}
	s.log.Info("registry: alias rolled back", "model", model, "alias", alias, "from", old, "version", to)
	return to, s.audit(ctx, AuditEvent{Action: ActionRollback, Model: model, Alias: alias, Version: to,
		Old: versionString(old), New: versionString(to)})
}

// DeleteAlias removes an alias. A Server keeps serving the version the
// alias last pointed at to models already asked for it, until it closes.
func (s *Store) DeleteAlias(ctx context.Context, model, alias string) error {
	if err := checkAlias(alias); err != nil {
		return err
	}
	if err := checkName("model", model); err != nil {
		return err
	}
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	modelDir := filepath.Join(s.root, model)
	aliases, err := readAliases(modelDir, model)
	if err != nil {
		return fmt.Errorf("registry: delete alias %s/%s: %w", model, alias, err)
	}
	i := slices.IndexFunc(aliases, func(a Alias) bool { return a.Name == alias })
	if i < 0 {
		return fmt.Errorf("registry: delete alias: %w: %s alias %q", ErrNotFound, model, alias)
	}
	old := aliases[i].Version
	aliases = slices.Delete(aliases, i, i+1)
	if err := s.writeAliases(modelDir, model, aliases); err != nil {
		return fmt.Errorf("registry: delete alias %s/%s: %w", model, alias, err)
	}
	s.log.Info("registry: alias deleted", "model", model, "alias", alias, "was", old)
	return s.audit(ctx, AuditEvent{Action: ActionDeleteAlias, Model: model, Alias: alias, Old: versionString(old)})
}
