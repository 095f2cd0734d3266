package redisstate

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/quiverml/quiver/abtest"
)

// Hash field prefixes. An aggregate or record hash holds "_epoch" (and a
// record "_seq"), counters as "c:"+name with a decimal value, and moments
// as "m:"+name with the value "N MEAN M2". A stops hash holds "_epoch",
// "_ver" and one "v:"+variant field per variant with a decision.
const (
	counterField = "c:"
	momentsField = "m:"
	variantField = "v:"
	metaField    = "_"
)

// encodeMoments writes m as "N MEAN M2" with the shortest decimal form
// that reads back to the same float64s.
func encodeMoments(m abtest.Moments) string {
	return strconv.FormatUint(m.N, 10) + " " + strconv.FormatFloat(m.Mean, 'g', -1, 64) + " " + strconv.FormatFloat(m.M2, 'g', -1, 64)
}

// decodeMoments reads what encodeMoments writes (or the script computes)
// and checks that the moments could summarise real values.
func decodeMoments(s string) (abtest.Moments, error) {
	n, rest, ok1 := strings.Cut(s, " ")
	mean, m2, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 {
		return abtest.Moments{}, fmt.Errorf("%w: moments %.40q, want \"N MEAN M2\"", ErrCorrupt, s)
	}
	var m abtest.Moments
	var err error
	if m.N, err = strconv.ParseUint(n, 10, 64); err != nil {
		return abtest.Moments{}, fmt.Errorf("%w: moments count %.40q, want a decimal count", ErrCorrupt, n)
	}
	if m.Mean, err = strconv.ParseFloat(mean, 64); err != nil {
		return abtest.Moments{}, fmt.Errorf("%w: moments mean %.40q, want a number", ErrCorrupt, mean)
	}
	if m.M2, err = strconv.ParseFloat(m2, 64); err != nil {
		return abtest.Moments{}, fmt.Errorf("%w: moments m2 %.40q, want a number", ErrCorrupt, m2)
	}
	if err := m.Check(); err != nil {
		return abtest.Moments{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return m, nil
}

// pairs turns a flat HGETALL-style reply into field/value pairs.
func pairs(reply []any) ([][2]string, error) {
	if len(reply)%2 != 0 {
		return nil, fmt.Errorf("%w: hash reply of %d elements, want field/value pairs", ErrCorrupt, len(reply))
	}
	out := make([][2]string, 0, len(reply)/2)
	for i := 0; i < len(reply); i += 2 {
		f, ok1 := reply[i].(string)
		v, ok2 := reply[i+1].(string)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%w: hash reply element %d is %T/%T, want strings", ErrCorrupt, i, reply[i], reply[i+1])
		}
		out = append(out, [2]string{f, v})
	}
	return out, nil
}

// decodeTotals reads an aggregate hash (HGETALL) as Totals. Metadata
// fields ("_...") are skipped; anything else that is not a counter or
// moments this package writes is ErrCorrupt. Maps are sized by the hash,
// so the allocation is bounded by its size.
func decodeTotals(hash map[string]string) (abtest.Totals, error) {
	t := abtest.Totals{Counters: make(map[string]uint64, len(hash)), Moments: make(map[string]abtest.Moments)}
	for f, v := range hash {
		switch {
		case strings.HasPrefix(f, metaField):
		case strings.HasPrefix(f, counterField):
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return abtest.Totals{}, fmt.Errorf("%w: counter %.60q is %.40q, want a decimal count", ErrCorrupt, f, v)
			}
			t.Counters[f[len(counterField):]] = n
		case strings.HasPrefix(f, momentsField):
			m, err := decodeMoments(v)
			if err != nil {
				return abtest.Totals{}, fmt.Errorf("field %.60q: %w", f, err)
			}
			t.Moments[f[len(momentsField):]] = m
		default:
			return abtest.Totals{}, fmt.Errorf("%w: field %.60q, want a counter (c:), moments (m:) or metadata (_)", ErrCorrupt, f)
		}
	}
	return t, nil
}

// decision is one variant's latest stop or resume in a stops hash.
type decision struct {
	ver     uint64
	stopped bool
	info    abtest.StopInfo
}

// maxReplicaID bounds Options.ReplicaID, which every decision carries.
const maxReplicaID = 256

// encodeDecision writes the part of a decision the script does not add
// (it prefixes the version): "STOPPED|SECONDS|NANOS|REPLICA|REASON", the
// time as Unix seconds and nanoseconds, which hold any time.Time's instant.
func encodeDecision(stopped bool, info abtest.StopInfo) []any {
	s := "0"
	if stopped {
		s = "1"
	}
	return []any{s, strconv.FormatInt(info.Time.Unix(), 10), strconv.Itoa(info.Time.Nanosecond()), info.Replica, info.Reason}
}

// decodeDecision reads "VER|STOPPED|SECONDS|NANOS|REPLICA|REASON"; the
// reason is last, so it may contain "|".
func decodeDecision(s string) (decision, error) {
	parts := strings.SplitN(s, "|", 6)
	if len(parts) != 6 {
		return decision{}, fmt.Errorf("%w: decision %.60q, want VER|STOPPED|SECONDS|NANOS|REPLICA|REASON", ErrCorrupt, s)
	}
	var d decision
	var err error
	if d.ver, err = strconv.ParseUint(parts[0], 10, 64); err != nil || d.ver == 0 {
		return decision{}, fmt.Errorf("%w: decision version %.30q, want a decimal number > 0", ErrCorrupt, parts[0])
	}
	switch parts[1] {
	case "0":
	case "1":
		d.stopped = true
	default:
		return decision{}, fmt.Errorf("%w: decision state %.30q, want 0 or 1", ErrCorrupt, parts[1])
	}
	sec, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return decision{}, fmt.Errorf("%w: decision time %.30q, want Unix seconds", ErrCorrupt, parts[2])
	}
	nsec, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil || nsec < 0 || nsec >= 1e9 {
		return decision{}, fmt.Errorf("%w: decision nanoseconds %.30q, want 0 to 999999999", ErrCorrupt, parts[3])
	}
	if len(parts[4]) > maxReplicaID {
		return decision{}, fmt.Errorf("%w: decision replica of %d bytes, want at most %d", ErrCorrupt, len(parts[4]), maxReplicaID)
	}
	d.info = abtest.StopInfo{Time: time.Unix(sec, nsec), Replica: parts[4], Reason: parts[5]}
	return d, nil
}

// decodeStops reads a stops hash (HGETALL reply): its epoch and each
// variant's latest decision.
func decodeStops(reply []any) (epoch string, ds map[string]decision, err error) {
	ps, err := pairs(reply)
	if err != nil {
		return "", nil, err
	}
	ds = make(map[string]decision, len(ps))
	for _, p := range ps {
		f, v := p[0], p[1]
		switch {
		case f == "_epoch":
			epoch = v
		case strings.HasPrefix(f, metaField):
		case strings.HasPrefix(f, variantField):
			d, err := decodeDecision(v)
			if err != nil {
				return "", nil, fmt.Errorf("variant %.60q: %w", f[len(variantField):], err)
			}
			ds[f[len(variantField):]] = d
		default:
			return "", nil, fmt.Errorf("%w: stops field %.60q, want a variant (v:) or metadata (_)", ErrCorrupt, f)
		}
	}
	if epoch == "" {
		return "", nil, fmt.Errorf("%w: stops hash without an epoch", ErrCorrupt)
	}
	return epoch, ds, nil
}
