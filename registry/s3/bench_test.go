package s3

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/registry"
	"github.com/quiverml/quiver/serving/servingtest"
)

// BenchmarkScan measures one Scan of one model (n versions, one alias), as a
// Server's poll makes it:
//
//   - cached: the model is unchanged: a HEAD of its marker and a
//     conditional GET of its alias table answered 304;
//   - relist: the marker changed (RelistInterval forced to zero): a LIST
//     and the alias table; manifests whose ETag is unchanged are reused;
//   - cold: a Store that never read the model: a LIST and every manifest;
//   - folder: registry.Store.Scan over a local copy of the same registry,
//     the peer this package stands beside.
func BenchmarkScan(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("versions=%d", n), func(b *testing.B) {
			e := newEnv(b)
			w := e.open(b)
			for i := range n {
				publishMLP(b, w, "m", fmt.Sprint(i))
			}
			require.NoError(b, w.SetAlias(ctx, "m", "prod", int64(n)))
			b.Run("cached", func(b *testing.B) {
				s := e.open(b)
				_, err := s.Scan(ctx, "m")
				require.NoError(b, err)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := s.Scan(ctx, "m"); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("relist", func(b *testing.B) {
				s := e.open(b, func(o *Options) { o.RelistInterval = time.Nanosecond })
				_, err := s.Scan(ctx, "m")
				require.NoError(b, err)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := s.Scan(ctx, "m"); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("cold", func(b *testing.B) {
				s := e.open(b)
				b.ReportAllocs()
				for b.Loop() {
					s.mu.Lock()
					delete(s.models, "m")
					s.mu.Unlock()
					if _, err := s.Scan(ctx, "m"); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("folder", func(b *testing.B) {
				dir := b.TempDir()
				require.NoError(b, os.CopyFS(dir, os.DirFS(e.srv.ObjectPath(e.bucket, "reg"))))
				f, err := registry.Open(dir, registry.Options{Logger: slog.New(slog.DiscardHandler)})
				require.NoError(b, err)
				_, err = f.Scan(ctx, "m")
				require.NoError(b, err)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := f.Scan(ctx, "m"); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkFetch measures Fetch of one version whose model file is
// bench_mlp.onnx (331 KB):
//
//   - cached: a cache entry this process verified: a conditional GET of the
//     manifest and a stat per file;
//   - download: an empty cache: the manifest, every object, hashing,
//     fsyncs and the rename;
//   - folder: registry.Store.Fetch, which hashes every file on every call.
func BenchmarkFetch(b *testing.B) {
	ctx := context.Background()
	data, err := os.ReadFile(servingtest.ModelPath("bench_mlp"))
	require.NoError(b, err)
	e := newEnv(b)
	w := e.open(b)
	_, err = w.Publish(ctx, "m", []registry.File{{Name: "model.onnx", Data: data}}, registry.Meta{})
	require.NoError(b, err)
	b.Run("cached", func(b *testing.B) {
		s := e.open(b)
		_, _, err := s.Fetch(ctx, "m", 1)
		require.NoError(b, err)
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := s.Fetch(ctx, "m", 1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("download", func(b *testing.B) {
		s := e.open(b)
		b.ReportAllocs()
		for b.Loop() {
			if err := os.RemoveAll(filepath.Join(s.CacheDir(), "m")); err != nil {
				b.Fatal(err)
			}
			if _, _, err := s.Fetch(ctx, "m", 1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("folder", func(b *testing.B) {
		dir := b.TempDir()
		require.NoError(b, os.CopyFS(dir, os.DirFS(e.srv.ObjectPath(e.bucket, "reg"))))
		f, err := registry.Open(dir, registry.Options{Logger: slog.New(slog.DiscardHandler)})
		require.NoError(b, err)
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := f.Fetch(ctx, "m", 1); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPublish measures publishing one small version (mlp.onnx, 3 KB):
// staging, claim, upload, commit, marker and audit record, against
// registry.Store.Publish on the local disk.
func BenchmarkPublish(b *testing.B) {
	ctx := context.Background()
	data := mlpBytes(b)
	files := []registry.File{{Name: "model.onnx", Data: data}}
	b.Run("s3", func(b *testing.B) {
		s := newEnv(b).open(b)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Publish(ctx, "m", files, registry.Meta{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("folder", func(b *testing.B) {
		f, err := registry.Open(b.TempDir(), registry.Options{Logger: slog.New(slog.DiscardHandler)})
		require.NoError(b, err)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := f.Publish(ctx, "m", files, registry.Meta{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
