//go:build !amd64 || purego

package vector

const hasAsm = false

func l2sqAsm(a, b []float32) float32 { return l2sqGo(a, b) }

func dotAsm(a, b []float32) float32 { return dotGo(a, b) }

func prefetch([]float32) {}

func dotInt8(a, b []int8) int32 { return dotInt8Go(a, b) }

func prefetchCode([]int8) {}

func prefetchLinks([]uint32) {}
