package abtest

// Attributes describe a unit for targeting: country, platform, plan, app
// version and so on. A nil map is an empty set of attributes.
type Attributes map[string]string

// Predicate decides from a unit's attributes whether the unit may enter an
// experiment. It must be safe for concurrent use and must not modify the map.
type Predicate func(Attributes) bool

// Equals is a Predicate that holds when attribute key is present and equal
// to value.
func Equals(key, value string) Predicate {
	return func(a Attributes) bool {
		v, ok := a[key]
		return ok && v == value
	}
}

// In is a Predicate that holds when attribute key is present and equal to one
// of values.
func In(key string, values ...string) Predicate {
	set := make(map[string]struct{}, len(values))
	for _, v := range values {
		set[v] = struct{}{}
	}
	return func(a Attributes) bool {
		v, ok := a[key]
		if !ok {
			return false
		}
		_, ok = set[v]
		return ok
	}
}

// Has is a Predicate that holds when attribute key is present.
func Has(key string) Predicate {
	return func(a Attributes) bool {
		_, ok := a[key]
		return ok
	}
}

// All is a Predicate that holds when every one of ps holds (true when ps is empty).
func All(ps ...Predicate) Predicate {
	return func(a Attributes) bool {
		for _, p := range ps {
			if !p(a) {
				return false
			}
		}
		return true
	}
}

// Any is a Predicate that holds when at least one of ps holds (false when ps is empty).
func Any(ps ...Predicate) Predicate {
	return func(a Attributes) bool {
		for _, p := range ps {
			if p(a) {
				return true
			}
		}
		return false
	}
}

// Not is a Predicate that holds when p does not.
func Not(p Predicate) Predicate {
	return func(a Attributes) bool { return !p(a) }
}
