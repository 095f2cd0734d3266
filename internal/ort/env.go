// Package ort owns the process-wide ONNX Runtime environment: it finds the
// shared library, initialises the environment once and reports how to
// install the library when it cannot be found.
package ort

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// EnvVar names the environment variable that points at the ONNX Runtime
// shared library.
const EnvVar = "ONNXRUNTIME_LIB"

// ErrLibraryNotFound is returned when no ONNX Runtime shared library can be
// found.
var ErrLibraryNotFound = errors.New("onnxruntime shared library not found")

var (
	mu       sync.Mutex
	initDone bool
	initErr  error
	libPath  string
)

// systemPaths are tried, in order, when neither an explicit path nor
// ONNXRUNTIME_LIB is given.
var systemPaths = []string{
	"/usr/local/lib/libonnxruntime.so",
	"/usr/lib/libonnxruntime.so",
	"/usr/lib/x86_64-linux-gnu/libonnxruntime.so",
	"/usr/local/lib/libonnxruntime.so.1",
	"/usr/lib/x86_64-linux-gnu/libonnxruntime.so.1",
}

// Resolve returns the library path that Init would use: explicit if not
// empty, else $ONNXRUNTIME_LIB, else the first existing system path, else
// a third_party/onnxruntime folder found by walking up from the working
// directory (where `make ort` installs it).
func Resolve(explicit string) (string, error) {
	if explicit != "" {
		if _, err := os.Stat(explicit); err != nil {
			return "", fmt.Errorf("%w: %s: %v", ErrLibraryNotFound, explicit, err)
		}
		return explicit, nil
	}
	if p := os.Getenv(EnvVar); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: %s=%s: %v", ErrLibraryNotFound, EnvVar, p, err)
		}
		return p, nil
	}
	for _, p := range systemPaths {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if dir, err := os.Getwd(); err == nil {
		for {
			p := filepath.Join(dir, "third_party", "onnxruntime", "libonnxruntime.so.1.30.0")
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("%w: set %s to the path of libonnxruntime.so, or run `make ort` "+
		"in the quiver repository to install ONNX Runtime 1.30.0 (%s/%s)",
		ErrLibraryNotFound, EnvVar, runtime.GOOS, runtime.GOARCH)
}

// Init initialises the ONNX Runtime environment once per process. The first
// successful call fixes the library; later calls with another explicit path
// return an error saying which library is already loaded. A failed call may
// be retried (for example after installing the library).
func Init(explicit string) error {
	mu.Lock()
	defer mu.Unlock()
	if initDone {
		if explicit != "" && explicit != libPath {
			return fmt.Errorf("ort: environment already initialised with %s, cannot switch to %s", libPath, explicit)
		}
		return initErr
	}
	p, err := Resolve(explicit)
	if err != nil {
		return err
	}
	ort.SetSharedLibraryPath(p)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("ort: initialising ONNX Runtime from %s: %w", p, err)
	}
	_ = ort.DisableTelemetry()
	initDone, libPath = true, p
	return nil
}

// LibraryPath returns the path of the loaded library, or "" before Init.
func LibraryPath() string {
	mu.Lock()
	defer mu.Unlock()
	return libPath
}

// Version returns the ONNX Runtime version string, or "" before Init.
func Version() string {
	mu.Lock()
	defer mu.Unlock()
	if !initDone {
		return ""
	}
	return ort.GetVersion()
}
