//go:build !amd64 || purego

package simd

import "testing"

func widths() []bool { return []bool{false} }

func setWide(*testing.T, bool) {}

type kernelPath struct{ name string }

func kernelPaths() []kernelPath { return []kernelPath{{name: "go"}} }

func usePath(testing.TB, kernelPath) {}
