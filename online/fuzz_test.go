package online

import (
	"errors"
	"testing"
	"time"
)

// FuzzParseOutcome feeds arbitrary stream entries to the parser: it never
// panics, every refusal wraps ErrEntry, and every outcome it accepts
// survives being encoded for the stream and parsed again.
func FuzzParseOutcome(f *testing.F) {
	f.Add("r1", "1", "1735689600000000000", true, "", false)
	f.Add("r2", "0", "", false, "extra", false)
	f.Add("", "1", "", false, "", false)
	f.Add("r3", "0.5", "x", true, "", true)
	f.Add("r4", "1", "-9223372036854775808", true, "", false)
	f.Fuzz(func(t *testing.T, id, label, ts string, hasTime bool, extra string, nonString bool) {
		fields := map[string]any{FieldRequestID: id, FieldLabel: label}
		if hasTime {
			fields[FieldTime] = ts
		}
		if extra != "" {
			fields[extra] = extra
		}
		if nonString {
			fields[FieldLabel] = []byte(label)
		}
		o, err := ParseOutcome(fields)
		if err != nil {
			if !errors.Is(err, ErrEntry) {
				t.Fatalf("error %v does not wrap ErrEntry", err)
			}
			if len(err.Error()) > 2*MaxRequestIDLen+512 {
				t.Fatalf("error message of %d bytes", len(err.Error()))
			}
			return
		}
		if nonString && extra != FieldLabel {
			t.Fatalf("a []byte label was accepted: %+v", o)
		}
		if o.Label != 0 && o.Label != 1 {
			t.Fatalf("label %v accepted", o.Label)
		}
		again, err := ParseOutcome(outcomeFields(o))
		if err != nil {
			t.Fatalf("re-parsing %+v: %v", o, err)
		}
		if again.RequestID != o.RequestID || again.Label != o.Label || !again.Time.Equal(o.Time) || again.Time.IsZero() != o.Time.IsZero() {
			t.Fatalf("round trip changed %+v into %+v", o, again)
		}
	})
}

func TestOutcomeFieldsRoundTrip(t *testing.T) {
	for _, o := range []Outcome{
		{RequestID: "r1", Label: 1},
		{RequestID: "r2", Label: 0, Time: time.Unix(0, 1735689600123456789)},
		{RequestID: "r3", Label: 1, Time: time.Unix(0, -1)},
	} {
		got, err := ParseOutcome(outcomeFields(o))
		if err != nil {
			t.Fatal(err)
		}
		if got.RequestID != o.RequestID || got.Label != o.Label || !got.Time.Equal(o.Time) {
			t.Fatalf("got %+v, want %+v", got, o)
		}
	}
}
