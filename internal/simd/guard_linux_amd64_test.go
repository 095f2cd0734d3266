//go:build linux && amd64 && !purego

package simd

import (
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// guardedPage returns a page of memory followed by one that faults on
// any access: an operand placed at the end of the first shows that a
// kernel reads nothing past its last element (masked tails included).
func guardedPage(t *testing.T) []byte {
	t.Helper()
	size := syscall.Getpagesize()
	mem, err := syscall.Mmap(-1, 0, 2*size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Munmap(mem) })
	require.NoError(t, syscall.Mprotect(mem[size:], syscall.PROT_NONE))
	return mem[:size:size]
}

// tail returns the last n elements of a page-long T array over page.
func tail[T any](page []byte, n int) []T {
	var z T
	all := unsafe.Slice((*T)(unsafe.Pointer(&page[0])), len(page)/int(unsafe.Sizeof(z)))
	return all[len(all)-n:]
}

func TestKernelsStopAtTheirLastElement(t *testing.T) {
	fa, fb, ia, ib := guardedPage(t), guardedPage(t), guardedPage(t), guardedPage(t)
	for n := range 68 {
		a, b := tail[float32](fa, n), tail[float32](fb, n)
		for i := range a {
			a[i], b[i] = float32(i), 1
		}
		for _, k := range append(floatKernels(true), floatKernels(false)...) {
			k.f(a, b)
		}
		c, d := tail[int8](ia, n), tail[int8](ib, n)
		for _, k := range int8Kernels() {
			k.f(c, d)
		}
		if !Convert {
			continue
		}
		for _, wide := range widths() {
			setWide(t, wide)
			// Channel kernels: every operand ends at a guard page.
			n8 := n &^ 7
			q8, s := tail[int8](ia, n8), tail[float32](fb, n8)
			for i := range s {
				s[i] = 1
			}
			require.Equal(t, n8, QuantizeInt8Channels(q8, tail[float32](fa, n8), s, tail[int8](ib, n8)))
			require.Equal(t, n8, DequantizeInt8Channels(tail[float32](fa, n8), q8, s, tail[int8](ib, n8)))
			// int4: whole blocks of 16 ending at the guard pages.
			n16 := n &^ 15
			x := tail[float32](fa, n16)
			for i := range x {
				x[i] = float32(i)
			}
			require.Equal(t, n16/16, QuantizeInt4Blocks(tail[byte](ia, n16/2), tail[float32](fb, n16/16), x, 16))
			require.Equal(t, n16/16, DequantizeInt4Blocks(x, tail[byte](ia, n16/2), tail[float32](fb, n16/16), 16))
		}
	}
}
