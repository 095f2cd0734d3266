package s3

import (
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/registry"
)

func validSnapshotInfo() SnapshotInfo {
	return SnapshotInfo{FormatVersion: 1, Name: "docs", Number: 3, Object: "data/0123456789abcdef0123456789abcdef",
		Size: 42, XXHash64: "00112233445566ff", Created: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}
}

func TestDecodeSnapshotInfo(t *testing.T) {
	good := validSnapshotInfo()
	data, err := json.Marshal(good)
	require.NoError(t, err)
	got, err := DecodeSnapshotInfo(data)
	require.NoError(t, err)
	require.Equal(t, good, got)

	tests := map[string]func(*SnapshotInfo){
		"format 0":        func(s *SnapshotInfo) { s.FormatVersion = 0 },
		"newer format":    func(s *SnapshotInfo) { s.FormatVersion = 2 },
		"bad name":        func(s *SnapshotInfo) { s.Name = "../x" },
		"number 0":        func(s *SnapshotInfo) { s.Number = 0 },
		"number too big":  func(s *SnapshotInfo) { s.Number = registry.MaxVersion + 1 },
		"object escapes":  func(s *SnapshotInfo) { s.Object = "../../reg/m/1/model.onnx" },
		"object short":    func(s *SnapshotInfo) { s.Object = "data/abc" },
		"object upper":    func(s *SnapshotInfo) { s.Object = "data/0123456789ABCDEF0123456789abcdef" },
		"negative size":   func(s *SnapshotInfo) { s.Size = -1 },
		"bad hash":        func(s *SnapshotInfo) { s.XXHash64 = "xyz" },
		"upper-case hash": func(s *SnapshotInfo) { s.XXHash64 = "00112233445566FF" },
	}
	for name, edit := range tests {
		t.Run(name, func(t *testing.T) {
			si := validSnapshotInfo()
			edit(&si)
			data, err := json.Marshal(si)
			require.NoError(t, err)
			_, err = DecodeSnapshotInfo(data)
			require.ErrorIs(t, err, registry.ErrCorrupt)
		})
	}
	for name, data := range map[string]string{
		"unknown field": `{"format_version":1,"name":"docs","number":1,"object":"data/0123456789abcdef0123456789abcdef","size":1,"xxhash64":"0011223344556677","created":"2026-01-01T00:00:00Z","extra":1}`,
		"trailing":      string(data) + "{}",
		"not json":      "snapshot",
		"empty":         "",
		"huge":          string(make([]byte, maxSnapshotInfoSize+1)),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeSnapshotInfo([]byte(data))
			require.ErrorIs(t, err, registry.ErrCorrupt)
		})
	}
}

// FuzzDecodeSnapshotInfo: any bytes decode to a valid record or fail with
// ErrCorrupt, never panic; a decoded record encodes and decodes to itself.
func FuzzDecodeSnapshotInfo(f *testing.F) {
	data, _ := json.Marshal(validSnapshotInfo())
	f.Add(data)
	f.Add([]byte(`{"format_version":1}`))
	f.Add([]byte(`{"number":-1,"object":"data/"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		si, err := DecodeSnapshotInfo(data)
		if err != nil {
			if !errors.Is(err, registry.ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			return
		}
		again, err := json.Marshal(si)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeSnapshotInfo(again)
		if err != nil {
			t.Fatalf("a decoded record does not decode again: %v", err)
		}
		if !back.Created.Equal(si.Created) {
			t.Fatalf("created %v -> %v", si.Created, back.Created)
		}
		back.Created = si.Created
		if back != si {
			t.Fatalf("round trip changed the record: %+v -> %+v", si, back)
		}
	})
}

// FuzzDecodeAuditRecord: an audit object decodes to one record or fails
// with ErrCorrupt.
func FuzzDecodeAuditRecord(f *testing.F) {
	line, _ := json.Marshal(registry.AuditEvent{Time: time.Unix(1, 0).UTC(), Actor: "ci", Action: registry.ActionPublish, Model: "m", Version: 1})
	f.Add(append(line, '\n'))
	f.Add([]byte("{}\n{}\n"))
	f.Add([]byte(`{"action":"publish","model":"m"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := decodeAuditRecord(data)
		if err != nil {
			if !errors.Is(err, registry.ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			return
		}
		if e.Action == "" || e.Model == "" {
			t.Fatalf("record without action or model decoded: %+v", e)
		}
	})
}

// FuzzVersionFromKey: listed keys (from the network) parse to a version
// number only when they name a manifest of a version folder that
// registry.Store would read, and the number prints back to the key.
func FuzzVersionFromKey(f *testing.F) {
	for _, k := range []string{"1/manifest.json", "0/manifest.json", "01/manifest.json", "9007199254740993/manifest.json", "1/model.onnx", "-1/manifest.json", ".claims/1"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		n, ok := versionFromKey(key)
		if !ok {
			return
		}
		if n <= 0 || n > registry.MaxVersion {
			t.Fatalf("%q parsed to %d", key, n)
		}
		if want := strconv.FormatInt(n, 10) + "/" + registry.ManifestFile; key != want {
			t.Fatalf("%q parsed to %d, which names %q", key, n, want)
		}
	})
}
