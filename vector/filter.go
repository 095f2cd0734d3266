package vector

import (
	"fmt"
	"math"
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

// validValue reports whether v is of a type Metadata can hold and keep
// through Save and Load: string, bool, or one of Go's integer and float
// types (not a named type defined on one of them).
func validValue(v any) bool {
	switch v.(type) {
	case string, bool, float64, float32,
		int, int8, int16, int32, int64,
		uint, uint8, uint16, uint32, uint64:
		return true
	}
	return false
}

// checkMetadata returns a copy of m, or nil for an empty m, after checking
// that every value can be stored. Values keep their Go types.
func checkMetadata(m Metadata) (Metadata, error) {
	if len(m) == 0 {
		return nil, nil
	}
	out := make(Metadata, len(m))
	for k, v := range m {
		if !validValue(v) {
			return nil, fmt.Errorf("%w: field %q holds %T, want string, bool, or an int, uint or float type", ErrMetadata, k, v)
		}
		out[k] = v
	}
	return out, nil
}

// Kinds of a value in the form filters compare.
const (
	kindNone = iota
	kindString
	kindBool
	kindInt   // an integral number that fits in int64
	kindUint  // an integral number above math.MaxInt64
	kindFloat // any other number
)

// cmpValue is a metadata value in the form filters compare it in, so that
// numbers of different Go types compare by value (Eq("n", 3) matches
// int8(3), uint64(3) and 3.0) and integers compare exactly, beyond the
// 2^53 up to which float64 holds every integer. Comparable and free of
// pointers to the heap except a string, so matching allocates nothing.
type cmpValue struct {
	kind uint8
	s    string
	b    bool
	i    int64
	u    uint64
	f    float64
}

// compareForm returns v's cmpValue; ok is false for a type Metadata does
// not hold.
func compareForm(v any) (cmpValue, bool) {
	switch x := v.(type) {
	case string:
		return cmpValue{kind: kindString, s: x}, true
	case bool:
		return cmpValue{kind: kindBool, b: x}, true
	case int:
		return cmpValue{kind: kindInt, i: int64(x)}, true
	case int8:
		return cmpValue{kind: kindInt, i: int64(x)}, true
	case int16:
		return cmpValue{kind: kindInt, i: int64(x)}, true
	case int32:
		return cmpValue{kind: kindInt, i: int64(x)}, true
	case int64:
		return cmpValue{kind: kindInt, i: x}, true
	case uint:
		return uintForm(uint64(x)), true
	case uint8:
		return cmpValue{kind: kindInt, i: int64(x)}, true
	case uint16:
		return cmpValue{kind: kindInt, i: int64(x)}, true
	case uint32:
		return cmpValue{kind: kindInt, i: int64(x)}, true
	case uint64:
		return uintForm(x), true
	case float32:
		return floatForm(float64(x)), true
	case float64:
		return floatForm(x), true
	}
	return cmpValue{}, false
}

func uintForm(u uint64) cmpValue {
	if u <= math.MaxInt64 {
		return cmpValue{kind: kindInt, i: int64(u)}
	}
	return cmpValue{kind: kindUint, u: u}
}

func floatForm(f float64) cmpValue {
	switch {
	case f != math.Trunc(f): // fractions, NaN, ±Inf
		return cmpValue{kind: kindFloat, f: f}
	case f >= -(1<<63) && f < 1<<63:
		return cmpValue{kind: kindInt, i: int64(f)}
	case f >= 1<<63 && f < 1<<64:
		return cmpValue{kind: kindUint, u: uint64(f)}
	}
	return cmpValue{kind: kindFloat, f: f}
}

// numberOf returns a numeric metadata value as a float64.
func numberOf(v any) (float64, bool) {
	c, ok := compareForm(v)
	if !ok {
		return 0, false
	}
	switch c.kind {
	case kindInt:
		return float64(c.i), true
	case kindUint:
		return float64(c.u), true
	case kindFloat:
		return c.f, true
	}
	return 0, false
}

type eqFilter struct {
	field string
	value cmpValue
}

func (f eqFilter) Match(m Metadata) bool {
	v, ok := m[f.field]
	if !ok {
		return false
	}
	c, ok := compareForm(v)
	return ok && c == f.value
}

// Eq selects items whose field equals value. Numbers compare by value
// whatever their Go types (integers exactly). A value of an unsupported
// type matches nothing.
func Eq(field string, value any) Filter {
	c, ok := compareForm(value)
	if !ok {
		return FilterFunc(func(Metadata) bool { return false })
	}
	return eqFilter{field, c}
}

type inFilter struct {
	field  string
	values map[cmpValue]struct{}
}

func (f inFilter) Match(m Metadata) bool {
	v, ok := m[f.field]
	if !ok {
		return false
	}
	c, ok := compareForm(v)
	if !ok {
		return false
	}
	_, ok = f.values[c]
	return ok
}

// In selects items whose field equals one of values (compared as in Eq).
func In(field string, values ...any) Filter {
	set := make(map[cmpValue]struct{}, len(values))
	for _, v := range values {
		if c, ok := compareForm(v); ok {
			set[c] = struct{}{}
		}
	}
	return inFilter{field, set}
}

type rangeFilter struct {
	field    string
	min, max float64
}

func (f rangeFilter) Match(m Metadata) bool {
	v, ok := numberOf(m[f.field])
	return ok && v >= f.min && v <= f.max
}

// Range selects items whose numeric field, of any number type, lies in
// [min, max] (compared as float64). Use math.Inf for an open end.
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
