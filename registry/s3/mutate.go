package s3

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/quiverml/quiver/registry"
)

// readAliasTable reads a model's alias table for a change, with its ETag
// ("" when the model has none yet).
func (s *Store) readAliasTable(ctx context.Context, model string) ([]registry.Alias, string, error) {
	data, etag, err := s.getObject(ctx, s.aliasesKey(model), maxAliasesSize, "")
	if errors.Is(err, registry.ErrNotFound) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	aliases, err := decodeAliases(data, model)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", s.aliasesKey(model), err)
	}
	return aliases, etag, nil
}

// updateAliases applies change to a model's alias table as a
// compare-and-swap: the table is written only if its ETag is still the one
// read (If-Match; If-None-Match: * when there was none), else it is read
// again and change runs again, so concurrent writers in any process never
// lose each other's moves. change returns false when there is nothing to
// write.
func (s *Store) updateAliases(ctx context.Context, model string, change func([]registry.Alias) ([]registry.Alias, bool, error)) error {
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		aliases, etag, err := s.readAliasTable(ctx, model)
		if err != nil {
			return err
		}
		next, changed, err := change(cloneAliases(aliases))
		if err != nil || !changed {
			return err
		}
		data, err := encodeAliases(model, next)
		if err != nil {
			return err
		}
		_, err = s.putObject(ctx, s.aliasesKey(model), data, putCond{create: etag == "", ifMatch: etag})
		if !errors.Is(err, errPrecondition) {
			return err
		}
		if attempt+1 >= maxCASAttempts {
			return fmt.Errorf("s3: %s: alias table changed %d times while being updated; too many concurrent writers: %w", model, attempt+1, err)
		}
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
	}
}

func moveOptions(opts []registry.MoveOptions) (registry.MoveOptions, error) {
	switch len(opts) {
	case 0:
		return registry.MoveOptions{}, nil
	case 1:
		return opts[0], nil
	}
	return registry.MoveOptions{}, fmt.Errorf("%w: %d MoveOptions; want at most one", registry.ErrBadInput, len(opts))
}

// checkMove refuses, with registry.ErrIncompatible, to move alias from
// version cur to next unless forced, as registry.Store does.
func (s *Store) checkMove(ctx context.Context, model, alias string, cur int64, next registry.Version, opts registry.MoveOptions) error {
	if cur == 0 || cur == next.Number {
		return nil
	}
	from, _, err := s.get(ctx, model, cur)
	if err == nil {
		err = registry.CheckCompatible(from.Signature, next.Signature)
	} else {
		err = fmt.Errorf("reading version %d to compare signatures: %w", cur, err)
	}
	if err == nil {
		return nil
	}
	if opts.Force {
		s.log.Warn("s3: alias forced to an incompatible version", "model", model, "alias", alias, "from", cur, "version", next.Number, "error", err)
		return nil
	}
	return fmt.Errorf("version %d -> %d: %w; MoveOptions{Force: true} moves it anyway", cur, next.Number, err)
}

// liveTarget returns the version an alias may point at: it exists and is
// not archived.
func (s *Store) liveTarget(ctx context.Context, model string, number int64) (registry.Version, error) {
	v, _, err := s.get(ctx, model, number)
	if err != nil {
		return registry.Version{}, err
	}
	if v.Archived {
		return registry.Version{}, fmt.Errorf("%w: version %d; unarchive it first", registry.ErrArchived, number)
	}
	return v, nil
}

// confirmMove runs after an alias moved to number: a Delete or Archive of
// that version in another Store may have checked the alias table just
// before the move. Each side writes first and checks the other's object
// second, so at least one of them sees the conflict; here the alias is put
// back as it was (unless it moved on since) and the error says why.
func (s *Store) confirmMove(ctx context.Context, model, alias string, number int64, before registry.Alias, existed bool) error {
	_, err := s.liveTarget(ctx, model, number)
	if err == nil || !(errors.Is(err, registry.ErrNotFound) || errors.Is(err, registry.ErrArchived)) {
		if err != nil {
			s.log.Warn("s3: alias moved; its version could not be read again to confirm it", "model", model, "alias", alias, "version", number, "error", err)
		}
		return nil
	}
	undo := s.updateAliases(ctx, model, func(aliases []registry.Alias) ([]registry.Alias, bool, error) {
		i := slices.IndexFunc(aliases, func(a registry.Alias) bool { return a.Name == alias })
		if i < 0 || aliases[i].Version != number {
			return nil, false, nil
		}
		if !existed {
			return slices.Delete(aliases, i, i+1), true, nil
		}
		aliases[i].Version, aliases[i].Previous, aliases[i].Updated = before.Version, slices.Clone(before.Previous), s.opts.Now().UTC()
		return aliases, true, nil
	})
	if undo != nil {
		s.log.Error("s3: alias points at a version deleted or archived concurrently and could not be moved back", "model", model, "alias", alias, "version", number, "error", undo)
		return fmt.Errorf("%w (moving the alias back failed: %v)", err, undo)
	}
	return fmt.Errorf("%w; changed concurrently, the alias was moved back", err)
}

// SetAlias points alias at a version, creating the alias or moving it, with
// the semantics of registry.Store.SetAlias: the version must exist and not
// be archived (ErrArchived), and a move to a version whose signature is
// incompatible (registry.CheckCompatible) fails with ErrIncompatible unless
// opts has Force set. The alias table is updated with a compare-and-swap on
// its ETag, retried on conflict, so concurrent moves of any aliases by any
// Stores all land; the checks run again on every retry. A move is visible
// to every Scan that starts after SetAlias returns.
func (s *Store) SetAlias(ctx context.Context, model, alias string, number int64, opts ...registry.MoveOptions) error {
	if err := checkAlias(alias); err != nil {
		return err
	}
	if err := checkNumber(model, number); err != nil {
		return err
	}
	mo, err := moveOptions(opts)
	if err != nil {
		return err
	}
	done, err := s.begin()
	if err != nil {
		return err
	}
	defer done()
	var before registry.Alias
	var existed, moved bool
	err = s.updateAliases(ctx, model, func(aliases []registry.Alias) ([]registry.Alias, bool, error) {
		v, err := s.liveTarget(ctx, model, number)
		if err != nil {
			return nil, false, err
		}
		i := slices.IndexFunc(aliases, func(a registry.Alias) bool { return a.Name == alias })
		existed = i >= 0
		if !existed {
			aliases = append(aliases, registry.Alias{Name: alias})
			i = len(aliases) - 1
		}
		a := &aliases[i]
		before = registry.Alias{Name: a.Name, Version: a.Version, Previous: slices.Clone(a.Previous), Updated: a.Updated}
		if a.Version == number {
			moved = false
			return nil, false, nil
		}
		if err := s.checkMove(ctx, model, alias, a.Version, v, mo); err != nil {
			return nil, false, err
		}
		if a.Version != 0 {
			a.Previous = append(slices.Clone(a.Previous), a.Version)
			if len(a.Previous) > s.opts.AliasHistory {
				a.Previous = a.Previous[len(a.Previous)-s.opts.AliasHistory:]
			}
		}
		a.Version, a.Updated = number, s.opts.Now().UTC()
		moved = true
		return aliases, true, nil
	})
	if err == nil && moved {
		err = s.confirmMove(ctx, model, alias, number, before, existed)
	}
	if err != nil {
		return fmt.Errorf("s3: set alias %s/%s: %w", model, alias, err)
	}
	if !moved {
		return nil
	}
	s.log.Info("s3: alias moved", "model", model, "alias", alias, "from", before.Version, "version", number)
	return s.audit(ctx, registry.AuditEvent{Action: registry.ActionSetAlias, Model: model, Alias: alias, Version: number,
		Old: versionString(before.Version), New: versionString(number)})
}

func versionString(n int64) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatInt(n, 10)
}

// Rollback moves alias back to the version it pointed at before the last
// move, skipping versions since deleted or archived, and returns it, with
// the semantics of registry.Store.Rollback (ErrNoHistory,
// ErrIncompatible unless forced). Like SetAlias it is a compare-and-swap
// retried on conflict.
func (s *Store) Rollback(ctx context.Context, model, alias string, opts ...registry.MoveOptions) (int64, error) {
	if err := checkAlias(alias); err != nil {
		return 0, err
	}
	if err := checkName("model", model); err != nil {
		return 0, err
	}
	mo, err := moveOptions(opts)
	if err != nil {
		return 0, err
	}
	done, err := s.begin()
	if err != nil {
		return 0, err
	}
	defer done()
	var before registry.Alias
	var to int64
	err = s.updateAliases(ctx, model, func(aliases []registry.Alias) ([]registry.Alias, bool, error) {
		i := slices.IndexFunc(aliases, func(a registry.Alias) bool { return a.Name == alias })
		if i < 0 {
			return nil, false, fmt.Errorf("%w: %s alias %q", registry.ErrNotFound, model, alias)
		}
		a := &aliases[i]
		before = registry.Alias{Name: a.Name, Version: a.Version, Previous: slices.Clone(a.Previous), Updated: a.Updated}
		prev := slices.Clone(a.Previous)
		to = 0
		var target registry.Version
		for len(prev) > 0 {
			cand := prev[len(prev)-1]
			prev = prev[:len(prev)-1]
			if v, err := s.liveTarget(ctx, model, cand); err == nil {
				to, target = cand, v
				break
			} else if !errors.Is(err, registry.ErrNotFound) && !errors.Is(err, registry.ErrArchived) {
				return nil, false, err
			}
		}
		if to == 0 {
			return nil, false, fmt.Errorf("%w: %s alias %q points at %d", registry.ErrNoHistory, model, alias, a.Version)
		}
		if err := s.checkMove(ctx, model, alias, a.Version, target, mo); err != nil {
			return nil, false, err
		}
		a.Version, a.Previous, a.Updated = to, prev, s.opts.Now().UTC()
		return aliases, true, nil
	})
	if err == nil {
		err = s.confirmMove(ctx, model, alias, to, before, true)
	}
	if err != nil {
		return 0, fmt.Errorf("s3: rollback %s/%s: %w", model, alias, err)
	}
	s.log.Info("s3: alias rolled back", "model", model, "alias", alias, "from", before.Version, "version", to)
	return to, s.audit(ctx, registry.AuditEvent{Action: registry.ActionRollback, Model: model, Alias: alias, Version: to,
		Old: versionString(before.Version), New: versionString(to)})
}

// DeleteAlias removes an alias (a compare-and-swap, like SetAlias). A
// Server keeps serving the version the alias last pointed at to models
// already asked for it, until it closes.
func (s *Store) DeleteAlias(ctx context.Context, model, alias string) error {
	if err := checkAlias(alias); err != nil {
		return err
	}
	if err := checkName("model", model); err != nil {
		return err
	}
	done, err := s.begin()
	if err != nil {
		return err
	}
	defer done()
	var old int64
	err = s.updateAliases(ctx, model, func(aliases []registry.Alias) ([]registry.Alias, bool, error) {
		i := slices.IndexFunc(aliases, func(a registry.Alias) bool { return a.Name == alias })
		if i < 0 {
			return nil, false, fmt.Errorf("%w: %s alias %q", registry.ErrNotFound, model, alias)
		}
		old = aliases[i].Version
		return slices.Delete(aliases, i, i+1), true, nil
	})
	if err != nil {
		return fmt.Errorf("s3: delete alias %s/%s: %w", model, alias, err)
	}
	s.log.Info("s3: alias deleted", "model", model, "alias", alias, "was", old)
	return s.audit(ctx, registry.AuditEvent{Action: registry.ActionDeleteAlias, Model: model, Alias: alias, Old: versionString(old)})
}

// updateManifest rewrites one version's manifest with a compare-and-swap on
// its ETag, retried on conflict, then moves the model's change marker.
// change returns false when nothing needs writing.
func (s *Store) updateManifest(ctx context.Context, model string, number int64, change func(v *registry.Version) (bool, error)) (registry.Version, error) {
	key := s.manifestKey(model, number)
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return registry.Version{}, err
		}
		data, etag, err := s.getObject(ctx, key, maxManifestSize, "")
		if errors.Is(err, registry.ErrNotFound) {
			return registry.Version{}, fmt.Errorf("%w: %s version %d", registry.ErrNotFound, model, number)
		}
		if err != nil {
			return registry.Version{}, err
		}
		v, err := decodeManifest(data, model, number)
		if err != nil {
			return registry.Version{}, err
		}
		v.Tags = maps.Clone(v.Tags)
		changed, err := change(&v)
		if err != nil || !changed {
			return v, err
		}
		mf, err := encodeManifest(v)
		if err != nil {
			return registry.Version{}, err
		}
		_, err = s.putObject(ctx, key, mf, putCond{ifMatch: etag})
		if errors.Is(err, errPrecondition) {
			if attempt+1 >= maxCASAttempts {
				return registry.Version{}, fmt.Errorf("s3: %s version %d: manifest changed %d times while being updated: %w", model, number, attempt+1, err)
			}
			if err := backoff(ctx, attempt); err != nil {
				return registry.Version{}, err
			}
			continue
		}
		if err != nil {
			return registry.Version{}, err
		}
		if err := s.touch(ctx, s.markerKey(model)); err != nil {
			s.log.Warn("s3: change marker not moved; readers see the change within RelistInterval", "model", model, "error", err)
		}
		return v, nil
	}
}

// Tag sets a free label on a version; key follows registry.ValidName,
// value is any text.
func (s *Store) Tag(ctx context.Context, model string, number int64, key, value string) error {
	if err := checkName("tag", key); err != nil {
		return err
	}
	if err := checkNumber(model, number); err != nil {
		return err
	}
	done, err := s.begin()
	if err != nil {
		return err
	}
	defer done()
	var old string
	_, err = s.updateManifest(ctx, model, number, func(v *registry.Version) (bool, error) {
		old = v.Tags[key]
		if v.Tags == nil {
			v.Tags = map[string]string{}
		}
		v.Tags[key] = value
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("s3: tag %s/%d: %w", model, number, err)
	}
	s.log.Info("s3: tagged", "model", model, "version", number, "key", key, "value", value)
	return s.audit(ctx, registry.AuditEvent{Action: registry.ActionTag, Model: model, Version: number, Key: key, Old: old, New: value})
}

// Untag removes a label from a version; removing a missing label is not an
// error and is not audited.
func (s *Store) Untag(ctx context.Context, model string, number int64, key string) error {
	if err := checkName("tag", key); err != nil {
		return err
	}
	if err := checkNumber(model, number); err != nil {
		return err
	}
	done, err := s.begin()
	if err != nil {
		return err
	}
	defer done()
	var old string
	var had bool
	_, err = s.updateManifest(ctx, model, number, func(v *registry.Version) (bool, error) {
		old, had = v.Tags[key]
		delete(v.Tags, key)
		return had, nil
	})
	if err != nil {
		return fmt.Errorf("s3: untag %s/%d: %w", model, number, err)
	}
	if !had {
		return nil
	}
	return s.audit(ctx, registry.AuditEvent{Action: registry.ActionUntag, Model: model, Version: number, Key: key, Old: old})
}

// Archive marks a version archived: it stays in the store and can be
// fetched, but it is no longer "latest", cannot be aliased and is not
// loaded by the latest-N policy. Archiving a version an alias points at
// fails with ErrAliased, also when the alias moves there concurrently
// (the archive is then undone).
func (s *Store) Archive(ctx context.Context, model string, number int64) error {
	return s.setArchived(ctx, model, number, true)
}

// Unarchive reverses Archive.
func (s *Store) Unarchive(ctx context.Context, model string, number int64) error {
	return s.setArchived(ctx, model, number, false)
}

// aliasedBy returns the alias pointing at number, if any.
func (s *Store) aliasedBy(ctx context.Context, model string, number int64) (string, error) {
	aliases, _, err := s.readAliasTable(ctx, model)
	if err != nil {
		return "", err
	}
	for _, a := range aliases {
		if a.Version == number {
			return a.Name, nil
		}
	}
	return "", nil
}

func (s *Store) setArchived(ctx context.Context, model string, number int64, archived bool) error {
	action := registry.ActionArchive
	if !archived {
		action = registry.ActionUnarchive
	}
	if err := checkNumber(model, number); err != nil {
		return err
	}
	done, err := s.begin()
	if err != nil {
		return err
	}
	defer done()
	refuse := func() error {
		alias, err := s.aliasedBy(ctx, model, number)
		if err == nil && alias != "" {
			err = fmt.Errorf("%w: %s version %d is %q; move the alias first", registry.ErrAliased, model, number, alias)
		}
		return err
	}
	if archived {
		if err := refuse(); err != nil {
			return fmt.Errorf("s3: archive: %w", err)
		}
	}
	changed := false
	_, err = s.updateManifest(ctx, model, number, func(v *registry.Version) (bool, error) {
		changed = v.Archived != archived
		v.Archived = archived
		return changed, nil
	})
	if err != nil {
		return fmt.Errorf("s3: %s %s/%d: %w", action, model, number, err)
	}
	if !changed {
		return nil
	}
	if archived {
		// Written first, checked second: see confirmMove.
		if rerr := refuse(); rerr != nil {
			_, uerr := s.updateManifest(ctx, model, number, func(v *registry.Version) (bool, error) {
				was := v.Archived
				v.Archived = false
				return was, nil
			})
			if uerr != nil {
				return fmt.Errorf("s3: archive: %w (undoing the archive failed: %v)", rerr, uerr)
			}
			return fmt.Errorf("s3: archive: %w; aliased concurrently, the archive was undone", rerr)
		}
	}
	s.log.Info("s3: "+string(action), "model", model, "version", number)
	return s.audit(ctx, registry.AuditEvent{Action: action, Model: model, Version: number,
		Old: strconv.FormatBool(!archived), New: strconv.FormatBool(archived)})
}

// Delete removes a version. It fails with ErrAliased while an alias points
// at it, also when the alias moves there concurrently. Deleting the
// manifest is the one step readers see; the artifacts and the number's
// claim are removed after it, and the version is dropped from alias
// histories.
func (s *Store) Delete(ctx context.Context, model string, number int64) error {
	if err := checkNumber(model, number); err != nil {
		return err
	}
	done, err := s.begin()
	if err != nil {
		return err
	}
	defer done()
	if err := ctx.Err(); err != nil {
		return err
	}
	key := s.manifestKey(model, number)
	manifest, _, err := s.getObject(ctx, key, maxManifestSize, "")
	if errors.Is(err, registry.ErrNotFound) {
		return fmt.Errorf("%w: %s version %d", registry.ErrNotFound, model, number)
	}
	if err != nil {
		return fmt.Errorf("s3: delete %s/%d: %w", model, number, err)
	}
	refuse := func() error {
		alias, err := s.aliasedBy(ctx, model, number)
		if err == nil && alias != "" {
			err = fmt.Errorf("%w: %s version %d is %q; move the alias first", registry.ErrAliased, model, number, alias)
		}
		return err
	}
	if err := refuse(); err != nil {
		return fmt.Errorf("s3: delete: %w", err)
	}
	if err := s.removeObject(ctx, key); err != nil {
		return fmt.Errorf("s3: delete %s/%d: %w", model, number, err)
	}
	s.model(model).forget(number)
	// Written first, checked second: see confirmMove.
	if rerr := refuse(); rerr != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if perr := s.putIdempotent(cctx, key, manifest); perr != nil {
			s.log.Error("s3: version deleted while an alias moved to it; restoring it failed", "model", model, "version", number, "error", perr)
			return fmt.Errorf("s3: delete: %w (restoring the version failed: %v)", rerr, perr)
		}
		return fmt.Errorf("s3: delete: %w; aliased concurrently, the version was restored", rerr)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := s.touch(cctx, s.markerKey(model)); err != nil {
		s.log.Warn("s3: change marker not moved; readers see the deletion within RelistInterval", "model", model, "error", err)
	}
	err = s.updateAliases(cctx, model, func(aliases []registry.Alias) ([]registry.Alias, bool, error) {
		pruned := false
		for i, a := range aliases {
			if slices.Contains(a.Previous, number) {
				aliases[i].Previous = slices.DeleteFunc(slices.Clone(a.Previous), func(p int64) bool { return p == number })
				pruned = true
			}
		}
		return aliases, pruned, nil
	})
	if err != nil {
		s.log.Warn("s3: deleted version left in alias histories (Rollback skips it)", "model", model, "version", number, "error", err)
	}
	if err := s.removePrefix(cctx, s.versionPrefix(model, number)); err != nil {
		s.log.Warn("s3: artifacts of a deleted version left behind", "model", model, "version", number, "error", err)
	} else if err := s.removeObject(cctx, s.claimKey(model, number)); err != nil {
		s.log.Warn("s3: claim of a deleted version left behind; its number is skipped", "model", model, "version", number, "error", err)
	}
	s.log.Info("s3: deleted", "model", model, "version", number)
	return s.audit(cctx, registry.AuditEvent{Action: registry.ActionDelete, Model: model, Version: number, Old: strconv.FormatInt(number, 10)})
}
