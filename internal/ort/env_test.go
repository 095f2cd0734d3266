package ort

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestResolveMissingExplicitPath(t *testing.T) {
	_, err := Resolve(filepath.Join(t.TempDir(), "nope.so"))
	require.ErrorIs(t, err, ErrLibraryNotFound)
}

func TestResolveMissingEnvPathSaysWhichVariable(t *testing.T) {
	t.Setenv(EnvVar, filepath.Join(t.TempDir(), "nope.so"))
	_, err := Resolve("")
	require.True(t, errors.Is(err, ErrLibraryNotFound))
	require.Contains(t, err.Error(), EnvVar)
}

func TestInitLoadsRuntime(t *testing.T) {
	require.NoError(t, Init(""))
	require.NoError(t, Init(""), "second Init is a no-op")
	require.NotEmpty(t, LibraryPath())
	require.Regexp(t, `^1\.`, Version())
}
