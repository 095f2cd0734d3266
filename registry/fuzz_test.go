package registry

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"ranker", "../x", "/abs", "a\x00b", ".hidden", "caf\u00e9", "a/b", `a\b`, "..", "x.y-z_0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidName(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("ValidName(%q) = %v; want ErrInvalidName", s, err)
			}
			return
		}
		// Whatever passes is one plain path element inside the root.
		if s == "" || len(s) > MaxNameLen || s[0] == '.' || strings.ContainsAny(s, "/\\\x00:") {
			t.Fatalf("ValidName(%q) accepted an unsafe name", s)
		}
		for _, r := range s {
			if r > 0x7e || r < 0x21 {
				t.Fatalf("ValidName(%q) accepted rune %U", s, r)
			}
		}
	})
}

func FuzzDecodeManifest(f *testing.F) {
	v := Version{FormatVersion: 1, Model: "m", Number: 3, Format: "onnx", Entry: "a",
		Files: []FileSum{{Name: "a", Size: 10, XXHash64: "0123456789abcdef"}},
		Tags:  map[string]string{"k": "v"}, Metrics: map[string]float64{"auc": 0.5},
		Lineage: Lineage{Parent: 2}}
	good, err := encodeManifest(v)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"format_version":1,"files":[{"name":"../x"}]}`))
	f.Add(good[:len(good)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := DecodeManifest(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			return
		}
		// Anything accepted is safe to use as paths and survives a round trip.
		if ValidName(v.Model) != nil || v.Number <= 0 {
			t.Fatalf("accepted model %q version %d", v.Model, v.Number)
		}
		for _, f := range v.Files {
			if ValidName(f.Name) != nil || f.Size < 0 {
				t.Fatalf("accepted file %+v", f)
			}
		}
		again, err := encodeManifest(v)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeManifest(again); err != nil {
			t.Fatalf("re-encoded manifest does not decode: %v", err)
		}
	})
}

func FuzzDecodeAliases(f *testing.F) {
	good, err := encodeAliases("m", []Alias{{Name: "production", Version: 3, Previous: []int64{1, 2}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"format_version":1,"model":"m","aliases":[{"name":"latest","version":1}]}`))
	f.Add([]byte(`{"format_version":1,"model":"m","aliases":[{"name":"a","version":-1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		model, aliases, err := DecodeAliases(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			return
		}
		if ValidName(model) != nil {
			t.Fatalf("accepted model %q", model)
		}
		for _, a := range aliases {
			if checkAlias(a.Name) != nil || a.Version <= 0 {
				t.Fatalf("accepted alias %+v", a)
			}
		}
	})
}

func FuzzDecodeAudit(f *testing.F) {
	f.Add([]byte(`{"time":"2026-11-27T08:00:00Z","actor":"a","action":"publish","model":"m","version":1,"new":"1"}` + "\n"))
	f.Add([]byte("{\"action\":\"publish\",\"model\":\"m\"}\n{\"action\":\"tag\",\"mo"))
	f.Add([]byte("\n\n{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		evs, err := DecodeAudit(bytes.NewReader(data))
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error %v does not match ErrCorrupt", err)
		}
		for _, e := range evs {
			if e.Action == "" || e.Model == "" || e.Version < 0 {
				t.Fatalf("accepted record %+v", e)
			}
		}
	})
}
