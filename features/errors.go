package features

import "errors"

// Sentinel errors. Every error the package returns wraps one of them, so
// callers can branch with errors.Is; the message says what was wrong and
// what was expected.
var (
	// ErrInvalidView reports a view definition that cannot be registered.
	ErrInvalidView = errors.New("features: invalid view")
	// ErrViewExists reports a second registration of a view name with a
	// different definition.
	ErrViewExists = errors.New("features: view already registered")
	// ErrUnknownView reports a view name that was never registered.
	ErrUnknownView = errors.New("features: unknown view")
	// ErrUnknownFeature reports a feature name the view does not declare.
	ErrUnknownFeature = errors.New("features: unknown feature")
	// ErrType reports a value whose kind differs from the feature's kind, or
	// a feature that has no dense float32 form (strings) in a dense read.
	ErrType = errors.New("features: wrong type")
	// ErrDimension reports an embedding whose length differs from the
	// feature's declared Dim.
	ErrDimension = errors.New("features: wrong embedding length")
	// ErrInvalidValue reports a NaN or infinite value that the view's
	// NaNPolicy rejects.
	ErrInvalidValue = errors.New("features: invalid value")
	// ErrTooLarge reports a value beyond what a snapshot can hold: a string
	// value longer than MaxStringLen bytes.
	ErrTooLarge = errors.New("features: value too large")
	// ErrEventTime reports an event time outside the range Unix nanoseconds
	// in an int64 can represent (about 1678 to 2262; see CheckEventTime).
	ErrEventTime = errors.New("features: event time out of range")
	// ErrInvalidEntity reports an empty or oversized entity key.
	ErrInvalidEntity = errors.New("features: invalid entity key")
	// ErrBuffer reports a destination buffer too short for the request.
	ErrBuffer = errors.New("features: buffer too short")
	// ErrNotFound reports an entity with no row in the view.
	ErrNotFound = errors.New("features: entity not found")
	// ErrExpired reports an entity whose row is older than the view's TTL.
	ErrExpired = errors.New("features: row outside max age")
	// ErrClosed reports use of a store after Close.
	ErrClosed = errors.New("features: store closed")
	// ErrSnapshot reports a snapshot file that is truncated or malformed.
	ErrSnapshot = errors.New("features: bad snapshot")
	// ErrChecksum reports a snapshot whose checksum does not match its
	// contents.
	ErrChecksum = errors.New("features: snapshot checksum mismatch")
	// ErrVersion reports a snapshot written in a format version this build
	// cannot read.
	ErrVersion = errors.New("features: unsupported snapshot version")
)
