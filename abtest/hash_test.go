package abtest

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/gonum/stat/distuv"
)

// The expected values were computed by testdata/bucket_vectors.py, an
// XXH64 written in Python from the xxHash specification (it checks itself
// against the published values XXH64("") = 0xef46db3751d8e999 and
// XXH64("abc") = 0x44bc2cf5ad770999), with the formula of doc.go.
func TestBucketVectors(t *testing.T) {
	tests := []struct {
		salt, sep, unit string
		hash            uint64
		bucket          uint32
	}{
		{"checkout-button", "\x00", "user-42", 0xe30f09928f85a5ed, 77165},
		{"checkout-button", "\x01", "user-42", 0x786f86a1e03a4541, 6977},
		{"ranker-canary", "\x00", "session-7f3a9c2e-1d4b-4e8a-9b6f-0c2d4e6f8a1b", 0xd64629b1d909d701, 575169},
		{"layer:ranking", "\x00", "user-42", 0x64145a0d96d01349, 300233},
	}
	for _, tc := range tests {
		t.Run(tc.salt+"/"+tc.unit, func(t *testing.T) {
			require.Equal(t, tc.hash, xxhash.Sum64String(tc.salt+tc.sep+tc.unit))
			p := newPrefix(tc.salt, tc.sep)
			require.Equal(t, tc.bucket, p.bucket(tc.unit))
			if tc.sep == sepVariant {
				require.Equal(t, tc.bucket, Bucket(tc.salt, tc.unit))
			}
		})
	}
}

func TestExperimentUsesDocumentedBuckets(t *testing.T) {
	e, err := NewExperiment(Config{Name: "checkout-button", Variants: []Variant{{"a", 1}, {"b", 1}}})
	require.NoError(t, err)
	a, err := e.Assign("user-42", nil)
	require.NoError(t, err)
	require.Equal(t, uint32(77165), a.Bucket)
	require.Equal(t, "a", a.Variant, "bucket 77165 < 500000 is in the first half")

	// Coverage 1% enrolls coverage buckets below 10000; 6977 is one.
	c, err := NewExperiment(Config{Name: "checkout-button", Coverage: 0.01, Variants: []Variant{{"a", 1}, {"b", 1}}})
	require.NoError(t, err)
	a, err = c.Assign("user-42", nil)
	require.NoError(t, err)
	require.True(t, a.Enrolled)
	// Coverage 0.5%: 6977 >= 5000, not covered.
	require.NoError(t, c.SetCoverage(0.005))
	a, err = c.Assign("user-42", nil)
	require.NoError(t, err)
	require.False(t, a.Enrolled)
	require.Equal(t, ReasonNotCovered, a.Reason)
}

func TestBucketMatchesOneShotHash(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		salt := strconv.FormatUint(r.Uint64(), 36)
		// Units of every length around xxhash's 32-byte block size and
		// around the stack buffer's limit, where hashing switches to the
		// streaming state.
		b := make([]byte, r.IntN(2*stackKey)+1)
		for i := range b {
			b[i] = byte('a' + r.IntN(26))
		}
		unit := string(b)
		want := uint32(xxhash.Sum64String(salt+"\x00"+unit) % Buckets)
		require.Equal(t, want, Bucket(salt, unit), "salt %q unit %q", salt, unit)
	}
}

// chiSquareP returns the p-value of a chi-square goodness-of-fit test of
// counts against equal expected counts.
func chiSquareP(t *testing.T, counts []int) float64 {
	t.Helper()
	total := 0
	for _, c := range counts {
		total += c
	}
	exp := float64(total) / float64(len(counts))
	x2 := 0.0
	for _, c := range counts {
		d := float64(c) - exp
		x2 += d * d / exp
	}
	return distuv.ChiSquared{K: float64(len(counts) - 1)}.Survival(x2)
}

func TestBucketUniformOver1MIDs(t *testing.T) {
	const n = 1_000_000
	p := newPrefix("uniformity", sepVariant)
	counts := make([]int, 1000) // 1000 bins of 1000 buckets each
	buf := make([]byte, 0, 32)
	for i := range n {
		buf = strconv.AppendInt(append(buf[:0], "user-"...), int64(i), 10)
		counts[p.bucket(string(buf))/1000]++
	}
	pv := chiSquareP(t, counts)
	require.Greater(t, pv, 0.001, "chi-square uniformity over 1000 bins")
}

func TestFractionToBuckets(t *testing.T) {
	tests := []struct {
		f    float64
		want uint32
	}{
		{-1, 0}, {0, 0}, {0.0001, 100}, {0.05, 50000}, {0.2, 200000}, {0.1234565, 123457}, {1, Buckets}, {2, Buckets},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, fractionToBuckets(tc.f), "f=%v", tc.f)
	}
}

// referenceAssign follows the scheme in doc.go step by step, with one-shot
// hashes of the concatenated bytes, as another service would.
func referenceAssign(salt string, weights []float64, coverage float64, layerSalt string, lo, hi float64, unit string) (variant int, enrolled bool) {
	h := func(b string) uint64 { return xxhash.Sum64String(b) % 1000000 }
	toBuckets := func(f float64) uint64 { return uint64(math.Floor(f*1000000 + 0.5)) }
	if layerSalt != "" {
		if b := h(layerSalt + "\x00" + unit); b < toBuckets(lo) || b >= toBuckets(hi) {
			return -1, false
		}
	}
	if coverage < 1 && h(salt+"\x01"+unit) >= toBuckets(coverage) {
		return -1, false
	}
	total := 0.0
	for _, w := range weights {
		total += w
	}
	b := h(salt + "\x00" + unit)
	c := 0.0
	for i, w := range weights {
		c += w
		bound := toBuckets(c / total)
		if i == len(weights)-1 {
			bound = 1000000
		}
		if b < bound {
			return i, true
		}
	}
	return len(weights) - 1, true
}

func TestAssignMatchesDocumentedScheme(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for trial := range 30 {
		n := 1 + r.IntN(5)
		ws := make([]float64, n)
		for i := range ws {
			ws[i] = float64(r.IntN(4)) * r.Float64() // some zeros
		}
		ws[r.IntN(n)] += 0.5 // positive total
		var vs []Variant
		for i, w := range ws {
			vs = append(vs, Variant{Name: strconv.Itoa(i), Weight: w})
		}
		coverage := []float64{1, 0.3, 0.75}[trial%3]
		salt := "exp-" + strconv.Itoa(trial)
		e, err := NewExperiment(Config{Name: salt, Variants: vs, Coverage: coverage})
		require.NoError(t, err)
		layerSalt, lo, hi := "", 0.0, 1.0
		if trial%2 == 1 {
			layerSalt, lo, hi = "layer-"+strconv.Itoa(trial), 0.25, 0.9
			l, err := NewLayer("l", layerSalt)
			require.NoError(t, err)
			require.NoError(t, l.Add(e, lo, hi))
		}
		for u := range 2000 {
			unit := "unit-" + strconv.Itoa(u)
			want, enrolled := referenceAssign(salt, ws, coverage, layerSalt, lo, hi, unit)
			got, err := e.Assign(unit, nil)
			require.NoError(t, err)
			require.Equal(t, enrolled, got.Enrolled, "trial %d unit %s", trial, unit)
			if enrolled {
				require.Equal(t, want, got.Index, "trial %d unit %s weights %v", trial, unit, ws)
			} else {
				require.Equal(t, 0, got.Index, "unenrolled units get the control")
			}
		}
	}
}
