package redisstate

import (
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/abtest"
)

func TestMomentsEncodingRoundTrips(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	cases := []abtest.Moments{{}, {N: 1, Mean: -abtest.MaxReward}, {N: 3, Mean: 5e-324, M2: math.MaxFloat64}, {N: math.MaxUint64, Mean: 0.1, M2: 0.2}}
	for range 1000 {
		cases = append(cases, abtest.Moments{N: r.Uint64(), Mean: r.NormFloat64() * math.Pow(10, float64(r.IntN(40)-20)), M2: r.ExpFloat64() * 1e6})
	}
	for _, m := range cases {
		got, err := decodeMoments(encodeMoments(m))
		require.NoError(t, err)
		require.Equal(t, m, got)
	}
	// What the script writes: %.0f and %.17g.
	got, err := decodeMoments("12 0.10000000000000001 1.0000000000000001e-05")
	require.NoError(t, err)
	require.Equal(t, abtest.Moments{N: 12, Mean: 0.1, M2: 1e-5}, got)
}

func TestDecodersRejectGarbage(t *testing.T) {
	_, err := pairs([]any{"c:requests/a"})
	require.ErrorIs(t, err, ErrCorrupt, "odd")
	_, err = pairs([]any{"c:requests/a", int64(5)})
	require.ErrorIs(t, err, ErrCorrupt, "not a string")
	for _, reply := range [][]string{
		{"c:requests/a", "-1"},                   // negative
		{"c:requests/a", "18446744073709551616"}, // past uint64
		{"c:requests/a", "1e3"},
		{"m:metric/a", "1 2"},
		{"m:metric/a", "x 1 1"},
		{"m:metric/a", "1 NaN 0"},
		{"m:metric/a", "1 1 -1"},
		{"m:metric/a", "0 1 0"},
		{"m:metric/a", "1 1e300 0"},
		{"other", "1"},
	} {
		_, err := decodeTotals(map[string]string{reply[0]: reply[1]})
		require.ErrorIs(t, err, ErrCorrupt, "%q", reply)
	}
	tot, err := decodeTotals(map[string]string{"_epoch": "e", "c:a": "3", "m:b": "2 1.5 0.5"})
	require.NoError(t, err)
	require.Equal(t, abtest.Totals{Counters: map[string]uint64{"a": 3}, Moments: map[string]abtest.Moments{"b": {N: 2, Mean: 1.5, M2: 0.5}}}, tot)

	for _, s := range []string{"", "1|1|0|0|r", "0|1|0|0|r|x", "1|2|0|0|r|x", "1|1|t|0|r|x", "x|1|0|0|r|x",
		"1|1|0|-1|r|x", "1|1|0|1000000000|r|x", "1|1|0|0|" + strings.Repeat("r", 300) + "|x"} {
		_, err := decodeDecision(s)
		require.ErrorIs(t, err, ErrCorrupt, "%q", s)
	}
	d, err := decodeDecision("7|1|1700000000|5|r1|error|rate")
	require.NoError(t, err)
	require.Equal(t, decision{ver: 7, stopped: true, info: abtest.StopInfo{Reason: "error|rate", Time: time.Unix(1700000000, 5), Replica: "r1"}}, d)
	// Any instant survives, far from the Unix epoch too.
	for _, at := range []time.Time{{}, time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)} {
		enc := []string{"1"}
		for _, p := range encodeDecision(false, abtest.StopInfo{Time: at}) {
			enc = append(enc, p.(string))
		}
		d, err := decodeDecision(strings.Join(enc, "|"))
		require.NoError(t, err)
		require.True(t, at.Equal(d.info.Time), "%v != %v", at, d.info.Time)
	}

	_, _, err = decodeStops([]any{"v:a", "1|1|0|0|r|x"})
	require.ErrorIs(t, err, ErrCorrupt, "no epoch")
	_, _, err = decodeStops([]any{"_epoch", "e", "zz", "1"})
	require.ErrorIs(t, err, ErrCorrupt)
	epoch, ds, err := decodeStops([]any{"_epoch", "e", "_ver", "3", "v:a|b", "3|0|0|5|r2|manual"})
	require.NoError(t, err)
	require.Equal(t, "e", epoch)
	require.Equal(t, map[string]decision{"a|b": {ver: 3, info: abtest.StopInfo{Reason: "manual", Time: time.Unix(0, 5), Replica: "r2"}}}, ds)
}

// splitReply turns fuzz bytes into a hash reply: elements separated by 0x00.
func splitReply(data string) []any {
	parts := strings.Split(data, "\x00")
	out := make([]any, len(parts))
	for i, p := range parts {
		out[i] = p
	}
	return out
}

// FuzzDecodeTotals feeds arbitrary aggregate hashes to the decoder: Totals
// whose every moments are valid, or ErrCorrupt; never a panic, and never
// more entries than the reply has fields.
func FuzzDecodeTotals(f *testing.F) {
	f.Add("_epoch\x00e\x00c:requests/a\x003\x00m:metric/a\x002 1.5 0.5")
	f.Add("c:x\x00-1")
	f.Add("m:x\x001 NaN 0\x00c:y")
	f.Add("m:x\x0018446744073709551615 1e100 1.7976931348623157e308")
	f.Fuzz(func(t *testing.T, data string) {
		ps, err := pairs(splitReply(data))
		if err != nil {
			require.True(t, errors.Is(err, ErrCorrupt), "%v", err)
			return
		}
		hash := make(map[string]string, len(ps))
		for _, p := range ps {
			hash[p[0]] = p[1]
		}
		tot, err := decodeTotals(hash)
		if err != nil {
			require.True(t, errors.Is(err, ErrCorrupt), "%v", err)
			return
		}
		require.LessOrEqual(t, len(tot.Counters)+len(tot.Moments), len(hash))
		for _, m := range tot.Moments {
			require.NoError(t, m.Check())
			back, err := decodeMoments(encodeMoments(m))
			require.NoError(t, err)
			require.Equal(t, m, back)
		}
	})
}

// FuzzDecodeStops feeds arbitrary stops hashes and decisions to the
// decoders: decisions that encode back to what was read, or ErrCorrupt.
func FuzzDecodeStops(f *testing.F) {
	f.Add("_epoch\x00e\x00_ver\x002\x00v:canary\x002|1|1700000000|0|r1|error_rate")
	f.Add("v:a\x00|||||")
	f.Add("_epoch\x00\x00v:\x001|0|-5|3||")
	f.Fuzz(func(t *testing.T, data string) {
		reply := splitReply(data)
		epoch, ds, err := decodeStops(reply)
		if err != nil {
			require.True(t, errors.Is(err, ErrCorrupt), "%v", err)
			return
		}
		require.NotEmpty(t, epoch)
		require.LessOrEqual(t, len(ds), len(reply)/2)
		for _, d := range ds {
			enc := []string{strconv.FormatUint(d.ver, 10)}
			for _, p := range encodeDecision(d.stopped, d.info) {
				enc = append(enc, p.(string))
			}
			back, err := decodeDecision(strings.Join(enc, "|"))
			require.NoError(t, err)
			require.Equal(t, d, back)
		}
	})
}
