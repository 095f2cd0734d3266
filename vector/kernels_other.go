//go:build !amd64 || purego

package vector

const hasAsm = false

func l2sqAsm(a, b []float32) float32 { return l2sqGo(a, b) }

func dotAsm(a, b []float32) float32 { return dotGo(a, b) }

func prefetch([]float32) {}
