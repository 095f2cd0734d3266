package vector

import (
	"fmt"
	"sort"
)

// Filter selects items by their metadata. Eq, In, Range, And, Or and Not
// build the common ones; any type with a Match method works.
type Filter interface {
	// Match reports whether an item with metadata m is selected.
	Match(m Metadata) bool
}

// FilterFunc adapts a function to a Filter.
type FilterFunc func(Metadata) bool

// Match calls f(m).
func (f FilterFunc) Match(m Metadata) bool { return f(m) }

// normValue converts a metadata value to its stored form: string, bool or
// float64. ok is false for any other type.
func normValue(v any) (any, bool) {
	switch x := v.(type) {
	case string, bool, float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int8:
		return float64(x), true
	case int16:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint8:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint64:
		return float64(x), true
	}
	return nil, false
}

// checkMetadata returns a normalised copy of m, or nil for an empty m.
func checkMetadata(m Metadata) (Metadata, error) {
	if len(m) == 0 {
		return nil, nil
	}
	out := make(Metadata, len(m))
	for k, v := range m {
		n, ok := normValue(v)
		if !ok {
			return nil, fmt.Errorf("%w: field %q holds %T, want string, bool or a number", ErrMetadata, k, v)
		}
		out[k] = n
	}
	return out, nil
}

type eqFilter struct {
	field string
	value any
}

func (f eqFilter) Match(m Metadata) bool {
	v, ok := m[f.field]
	return ok && v == f.value
}

// Eq selects items whose field equals value (numbers compare as float64).
// A value of an unsupported type matches nothing.
func Eq(field string, value any) Filter {
	n, ok := normValue(value)
	if !ok {
		return FilterFunc(func(Metadata) bool { return false })
	}
	return eqFilter{field, n}
}

type inFilter struct {
	field  string
	values map[any]struct{}
}

func (f inFilter) Match(m Metadata) bool {
	v, ok := m[f.field]
	if !ok {
		return false
	}
	_, ok = f.values[v]
	return ok
}

// In selects items whose field equals one of values.
func In(field string, values ...any) Filter {
	set := make(map[any]struct{}, len(values))
	for _, v := range values {
		if n, ok := normValue(v); ok {
			set[n] = struct{}{}
		}
	}
	return inFilter{field, set}
}

type rangeFilter struct {
	field    string
	min, max float64
}

func (f rangeFilter) Match(m Metadata) bool {
	v, ok := m[f.field].(float64)
	return ok && v >= f.min && v <= f.max
}

// Range selects items whose numeric field lies in [min, max]. Use
// math.Inf for an open end.
func Range(field string, min, max float64) Filter { return rangeFilter{field, min, max} }

type andFilter []Filter

func (fs andFilter) Match(m Metadata) bool {
	for _, f := range fs {
		if !f.Match(m) {
			return false
		}
	}
	return true
}

// And selects items matched by every filter.
func And(filters ...Filter) Filter { return andFilter(filters) }

type orFilter []Filter

func (fs orFilter) Match(m Metadata) bool {
	for _, f := range fs {
		if f.Match(m) {
			return true
		}
	}
	return false
}

// Or selects items matched by at least one filter.
func Or(filters ...Filter) Filter { return orFilter(filters) }

type notFilter struct{ f Filter }

func (n notFilter) Match(m Metadata) bool { return !n.f.Match(m) }

// Not selects items that f does not match.
func Not(f Filter) Filter { return notFilter{f} }

// sortedKeys returns m's keys in order (deterministic encoding).
func sortedKeys(m Metadata) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
