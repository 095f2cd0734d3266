package registry

import (
	"errors"

	"github.com/quiverml/quiver/serving"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrInvalidName reports a model, alias, file or tag name outside the
	// accepted charset (see ValidName).
	ErrInvalidName = errors.New("registry: invalid name")
	// ErrNotFound reports a model, version or alias that does not exist.
	ErrNotFound = errors.New("registry: not found")
	// ErrExists reports a version number that is already published.
	ErrExists = errors.New("registry: already exists")
	// ErrAliased reports a version that cannot be deleted or archived because
	// an alias points at it.
	ErrAliased = errors.New("registry: version is aliased")
	// ErrArchived reports an alias move to an archived version.
	ErrArchived = errors.New("registry: version is archived")
	// ErrChecksum reports a model file whose size or xxhash64 differs from
	// its manifest, a file missing from a version, or a file the manifest
	// does not list.
	ErrChecksum = errors.New("registry: checksum mismatch")
	// ErrCorrupt reports a manifest, alias file or audit log that cannot be
	// decoded or holds impossible values.
	ErrCorrupt = errors.New("registry: corrupt metadata")
	// ErrNoHistory reports a rollback of an alias that has no earlier version.
	ErrNoHistory = errors.New("registry: alias has no earlier version")
	// ErrNotServing is returned by a served model whose alias has no loaded
	// version yet (or any more, after the Server closed).
	ErrNotServing = errors.New("registry: no version is serving")
	// ErrWarmUp reports a version whose warm-up failed; it is not swapped in.
	ErrWarmUp = errors.New("registry: warm-up failed")
	// ErrSignature reports a loaded model whose inputs or outputs differ from
	// the signature recorded in its manifest, or a Meta.Signature given to
	// Publish that disagrees with the ONNX file published.
	ErrSignature = errors.New("registry: signature mismatch")
	// ErrIncompatible reports an alias move (SetAlias, Rollback) to a
	// version whose signature would break the callers of the version the
	// alias points at (see CheckCompatible); MoveOptions.Force moves it
	// anyway.
	ErrIncompatible = errors.New("registry: incompatible signature")
	// ErrBadInput reports an argument that is out of range or inconsistent
	// (a negative version number, no files, duplicate file names...).
	ErrBadInput = errors.New("registry: bad argument")
	// ErrClosed is returned after Close. It is serving.ErrClosed, so callers
	// that route between models see one closed error.
	ErrClosed = serving.ErrClosed
)
