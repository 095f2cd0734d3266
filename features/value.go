package features

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Kind is the type of a feature.
type Kind uint8

// Feature kinds.
const (
	// KindInvalid is the zero Kind; a Value of this kind is null.
	KindInvalid Kind = iota
	// KindFloat32 is a single float32.
	KindFloat32
	// KindInt64 is a single int64. Dense reads convert it to float32, which
	// is exact up to 2^24 in magnitude.
	KindInt64
	// KindString is a string. Strings have no dense form: read them with
	// GetRow.
	KindString
	// KindEmbedding is a fixed-length []float32 (Feature.Dim values).
	KindEmbedding
)

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case KindFloat32:
		return "float32"
	case KindInt64:
		return "int64"
	case KindString:
		return "string"
	case KindEmbedding:
		return "embedding"
	default:
		return fmt.Sprintf("Kind(%d)", uint8(k))
	}
}

// Value is one typed feature value. The zero Value is null: writing it
// stores the feature as NULL_VALUE.
type Value struct {
	kind Kind
	i    int64
	f    float32
	s    string
	v    []float32
}

// Float32 returns a float32 Value.
func Float32(x float32) Value { return Value{kind: KindFloat32, f: x} }

// Int64 returns an int64 Value.
func Int64(x int64) Value { return Value{kind: KindInt64, i: x} }

// String returns a string Value.
func String(s string) Value { return Value{kind: KindString, s: s} }

// Embedding returns an embedding Value. The store copies v when it is
// written; the caller may reuse v afterwards.
func Embedding(v []float32) Value { return Value{kind: KindEmbedding, v: v} }

// Null returns the null Value (the zero Value).
func Null() Value { return Value{} }

// Kind returns the value's kind; KindInvalid for null.
func (v Value) Kind() Kind { return v.kind }

// IsNull reports whether v is null.
func (v Value) IsNull() bool { return v.kind == KindInvalid }

// Float32 returns the float32 held by v, or 0 for another kind.
func (v Value) Float32() float32 { return v.f }

// Int64 returns the int64 held by v, or 0 for another kind.
func (v Value) Int64() int64 { return v.i }

// Str returns the string held by v, or "" for another kind.
func (v Value) Str() string { return v.s }

// Embedding returns the embedding held by v, or nil for another kind. The
// slice must not be modified.
func (v Value) Embedding() []float32 { return v.v }

// Equal reports whether v and w hold the same kind and value (NaN equals
// NaN bit for bit).
func (v Value) Equal(w Value) bool {
	if v.kind != w.kind {
		return false
	}
	switch v.kind {
	case KindFloat32:
		return math.Float32bits(v.f) == math.Float32bits(w.f)
	case KindInt64:
		return v.i == w.i
	case KindString:
		return v.s == w.s
	case KindEmbedding:
		return slices.EqualFunc(v.v, w.v, func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) })
	}
	return true
}

// String formats the value for logs.
func (v Value) String() string {
	switch v.kind {
	case KindFloat32:
		return fmt.Sprint(v.f)
	case KindInt64:
		return fmt.Sprint(v.i)
	case KindString:
		return fmt.Sprintf("%q", v.s)
	case KindEmbedding:
		return fmt.Sprint(v.v)
	}
	return "null"
}

// Row is one entity's values for one view at one event time: the unit of
// writes (Put) and of typed reads (GetRow). Features missing from Values,
// or given as Null, are stored as NULL_VALUE.
type Row struct {
	// Entity is the entity key (for example a user id).
	Entity string
	// EventTime is when the values were observed. A row never replaces a
	// stored row with a later EventTime. The zero time means the time of
	// the write (the store's clock when Put runs), so such a row is fresh
	// when written and ages from then. A time outside what CheckEventTime
	// accepts (about 1678 to 2262) is an error wrapping ErrEventTime.
	EventTime time.Time
	// Values maps feature names to values.
	Values map[string]Value
}

// Status is the state of one value returned by a read. The numbering
// follows Feast's FieldStatus.
type Status uint8

// Value statuses.
const (
	// StatusInvalid is the zero Status; reads never return it.
	StatusInvalid Status = iota
	// StatusPresent: the value was stored and is within the view's TTL.
	StatusPresent
	// StatusNull: the row exists but this feature was written as null (or
	// its NaN was nulled by the view's policy); the default was served.
	StatusNull
	// StatusNotFound: no row for the entity; the default was served.
	StatusNotFound
	// StatusOutsideMaxAge: the row is older than the view's TTL; the default
	// was served.
	StatusOutsideMaxAge
)

// String returns the Feast name of the status.
func (s Status) String() string {
	switch s {
	case StatusPresent:
		return "PRESENT"
	case StatusNull:
		return "NULL_VALUE"
	case StatusNotFound:
		return "NOT_FOUND"
	case StatusOutsideMaxAge:
		return "OUTSIDE_MAX_AGE"
	}
	return "INVALID"
}
