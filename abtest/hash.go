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

// prefix holds salt ‖ separator. Short keys are hashed in one shot from a
// stack buffer (xxhash's one-shot path is several times faster than its
// streaming Digest); longer ones stream from an xxhash state that has
// already consumed the prefix.
type prefix struct {
	key []byte        // salt ‖ separator
	d   xxhash.Digest // state after key
}

// stackKey is the longest salt ‖ separator ‖ unit hashed from the stack.
const stackKey = 128

func newPrefix(salt, sep string) prefix {
	p := prefix{key: []byte(salt + sep)}
	p.d.Reset()
	_, _ = p.d.Write(p.key)
	return p
}

func (p *prefix) bucket(unit string) uint32 {
	return uint32(p.hash(unit) % Buckets)
}

func (p *prefix) hash(unit string) uint64 {
	if n := len(p.key) + len(unit); n <= stackKey {
		var buf [stackKey]byte
		copy(buf[copy(buf[:], p.key):], unit)
		return xxhash.Sum64(buf[:n])
	}
	d := p.d // copy: the prefix is shared by concurrent callers
	_, _ = d.WriteString(unit)
	return d.Sum64()
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
