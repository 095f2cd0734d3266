package registry

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
)

// BenchmarkScan measures one poll's read of a model with many versions and
// aliases: what a Server pays per model per PollInterval.
func BenchmarkScan(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("versions=%d", n), func(b *testing.B) {
			ctx := context.Background()
			s, err := Open(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			for i := 1; i <= n; i++ {
				if _, err := s.Publish(ctx, "m", []File{{Name: "model.bin", Data: []byte("x")}},
					Meta{Number: int64(i), Metrics: map[string]float64{"auc": 0.9}, Tags: map[string]string{"team": "search"}}); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.SetAlias(ctx, "m", "production", int64(n)); err != nil {
				b.Fatal(err)
			}
			b.Run("cached", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					snap, err := s.Scan(ctx, "m")
					if err != nil || len(snap.Versions) != n {
						b.Fatal(err, len(snap.Versions))
					}
				}
			})
			// What Scan would cost decoding every manifest on every poll.
			b.Run("uncached", func(b *testing.B) {
				b.ReportAllocs()
				modelDir := filepath.Join(s.Root(), "m")
				for b.Loop() {
					nums, err := versionNumbers(modelDir)
					if err != nil {
						b.Fatal(err)
					}
					for _, k := range nums {
						if _, err := readManifest(filepath.Join(modelDir, strconv.FormatInt(k, 10)), "m", k); err != nil {
							b.Fatal(err)
						}
					}
					if _, err := readAliases(modelDir, "m"); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
