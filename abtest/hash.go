package abtest

import (
	"strings"

	"github.com/cespare/xxhash/v2"
)

// Buckets is the number of hash buckets a unit can fall in: assignment has a
// resolution of 1/1,000,000 (0.0001%).
const Buckets = 1_000_000

// Separator bytes placed between the salt and the unit id in the hashed
// bytes (see the package documentation).
const (
	sepVariant  = "\x00"
	sepCoverage = "\x01"
)

// Bucket returns the bucket in [0, Buckets) of unit under salt:
//
//	XXH64(salt ‖ 0x00 ‖ unit, seed 0) mod 1,000,000
//
// where ‖ is byte concatenation of the UTF-8 strings. It is the position
// used for variant ranges and layer slices, exported so that other services
// and tests can reproduce an assignment.
func Bucket(salt, unit string) uint32 {
	h := newPrefix(salt, sepVariant)
	return h.bucket(unit)
}

// prefix is an xxhash state that has already consumed salt ‖ separator, so
// that each assignment only hashes the unit id.
type prefix struct{ d xxhash.Digest }

func newPrefix(salt, sep string) prefix {
	var p prefix
	p.d.Reset()
	_, _ = p.d.WriteString(salt)
	_, _ = p.d.WriteString(sep)
	return p
}

func (p *prefix) bucket(unit string) uint32 {
	d := p.d // copy: the prefix is shared by concurrent callers
	_, _ = d.WriteString(unit)
	return uint32(d.Sum64() % Buckets)
}

// validSalt reports whether s can be used as a salt: it must not contain
// the separator bytes, so that salt ‖ sep ‖ unit is unambiguous.
func validSalt(s string) bool {
	return !strings.ContainsAny(s, sepVariant+sepCoverage)
}

// fractionToBuckets converts a fraction in [0,1] to a bucket count,
// rounding half up: floor(f*Buckets + 0.5).
func fractionToBuckets(f float64) uint32 {
	if f <= 0 {
		return 0
	}
	if f >= 1 {
		return Buckets
	}
	return uint32(f*Buckets + 0.5)
}
