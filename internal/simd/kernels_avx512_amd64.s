//go:build amd64 && !purego

#include "textflag.h"

// AVX-512 distance kernels: four independent 16-wide accumulators, and a
// masked load for the last n mod 16 (or mod 64) elements, which reads
// nothing past the operands (masked-out lanes are neither loaded nor
// faulted). The entry points l2sqKernel, dotKernel and dotInt8Kernel
// choose between these and the AVX2 kernels on ·Wide and ·vnni, so the Go
// wrappers stay one call and keep inlining into a search's loop.

// func l2sqKernel(a, b *float32, n int) float32
TEXT ·l2sqKernel(SB), NOSPLIT, $0-28
	CMPB ·Wide(SB), $0
	JEQ  l2narrow
	JMP  ·l2sqAVX512(SB)

l2narrow:
	JMP ·l2sqAVX2(SB)

// func dotKernel(a, b *float32, n int) float32
TEXT ·dotKernel(SB), NOSPLIT, $0-28
	CMPB ·Wide(SB), $0
	JEQ  dotnarrow
	JMP  ·dotAVX512(SB)

dotnarrow:
	JMP ·dotAVX2(SB)

// func dotInt8Kernel(a, b *int8, n int) int32
TEXT ·dotInt8Kernel(SB), NOSPLIT, $0-28
	CMPB ·Wide(SB), $0
	JEQ  i8narrow
	CMPB ·vnni(SB), $0
	JEQ  i8bw
	JMP  ·dotInt8VNNI(SB)

i8bw:
	JMP ·dotInt8AVX512BW(SB)

i8narrow:
	JMP ·dotInt8AVX2(SB)

// func l2sqAVX512(a, b *float32, n int) float32
TEXT ·l2sqAVX512(SB), NOSPLIT, $0-28
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0 // a VEX write clears the upper lanes of Z0 too
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

zl2loop64:
	CMPQ CX, $64
	JL   zl2loop16
	VMOVUPS (SI), Z4
	VMOVUPS 64(SI), Z5
	VMOVUPS 128(SI), Z6
	VMOVUPS 192(SI), Z7
	VSUBPS  (DI), Z4, Z4
	VSUBPS  64(DI), Z5, Z5
	VSUBPS  128(DI), Z6, Z6
	VSUBPS  192(DI), Z7, Z7
	VFMADD231PS Z4, Z4, Z0
	VFMADD231PS Z5, Z5, Z1
	VFMADD231PS Z6, Z6, Z2
	VFMADD231PS Z7, Z7, Z3
	ADDQ $256, SI
	ADDQ $256, DI
	SUBQ $64, CX
	JMP  zl2loop64

zl2loop16:
	CMPQ CX, $16
	JL   zl2tail
	VMOVUPS (SI), Z4
	VSUBPS  (DI), Z4, Z4
	VFMADD231PS Z4, Z4, Z0
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  zl2loop16

zl2tail:
	TESTQ CX, CX
	JEQ   zl2reduce
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K1
	VMOVUPS.Z (SI), K1, Z4
	VMOVUPS.Z (DI), K1, Z5
	VSUBPS Z5, Z4, Z4
	VFMADD231PS Z4, Z4, Z1

zl2reduce:
	VADDPS Z1, Z0, Z0
	VADDPS Z3, Z2, Z2
	VADDPS Z2, Z0, Z0
	VEXTRACTF64X4 $1, Z0, Y1
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS  X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func dotAVX512(a, b *float32, n int) float32
TEXT ·dotAVX512(SB), NOSPLIT, $0-28
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

zdotloop64:
	CMPQ CX, $64
	JL   zdotloop16
	VMOVUPS (SI), Z4
	VMOVUPS 64(SI), Z5
	VMOVUPS 128(SI), Z6
	VMOVUPS 192(SI), Z7
	VFMADD231PS (DI), Z4, Z0
	VFMADD231PS 64(DI), Z5, Z1
	VFMADD231PS 128(DI), Z6, Z2
	VFMADD231PS 192(DI), Z7, Z3
	ADDQ $256, SI
	ADDQ $256, DI
	SUBQ $64, CX
	JMP  zdotloop64

zdotloop16:
	CMPQ CX, $16
	JL   zdottail
	VMOVUPS (SI), Z4
	VFMADD231PS (DI), Z4, Z0
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  zdotloop16

zdottail:
	TESTQ CX, CX
	JEQ   zdotreduce
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K1
	VMOVUPS.Z (SI), K1, Z4
	VMOVUPS.Z (DI), K1, Z5
	VFMADD231PS Z5, Z4, Z1

zdotreduce:
	VADDPS Z1, Z0, Z0
	VADDPS Z3, Z2, Z2
	VADDPS Z2, Z0, Z0
	VEXTRACTF64X4 $1, Z0, Y1
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS  X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func dotInt8VNNI(a, b *int8, n int) int32
// VPDPBUSD multiplies unsigned bytes by signed ones. With a' = a xor 0x80
// = a + 128 read as unsigned, Σ a·b = Σ a'·b - 128·Σ b; Σ b comes from a
// second VPDPBUSD against bytes of 1. Both sums wrap modulo 2^32, so the
// result equals the int32 sum of DotInt8Go bit for bit at any length.
TEXT ·dotInt8VNNI(SB), NOSPLIT, $0-28
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	VPXOR Y0, Y0, Y0 // Σ a'·b
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2 // Σ b
	VPXOR Y3, Y3, Y3
	MOVL $0x80808080, AX
	VPBROADCASTD AX, Z8
	MOVL $0x01010101, AX
	VPBROADCASTD AX, Z9

vnniloop128:
	CMPQ CX, $128
	JL   vnniloop64
	VMOVDQU64 (SI), Z4
	VMOVDQU64 64(SI), Z5
	VMOVDQU64 (DI), Z6
	VMOVDQU64 64(DI), Z7
	VPXORD Z8, Z4, Z4
	VPXORD Z8, Z5, Z5
	VPDPBUSD Z6, Z4, Z0
	VPDPBUSD Z7, Z5, Z1
	VPDPBUSD Z6, Z9, Z2
	VPDPBUSD Z7, Z9, Z3
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $128, CX
	JMP  vnniloop128

vnniloop64:
	CMPQ CX, $64
	JL   vnnitail
	VMOVDQU64 (SI), Z4
	VMOVDQU64 (DI), Z6
	VPXORD Z8, Z4, Z4
	VPDPBUSD Z6, Z4, Z0
	VPDPBUSD Z6, Z9, Z2
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $64, CX

vnnitail:
	TESTQ CX, CX
	JEQ   vnnireduce
	MOVQ  $1, AX
	SHLQ  CX, AX
	DECQ  AX
	KMOVQ AX, K1
	VMOVDQU8.Z (SI), K1, Z4 // masked-out a' lanes are 0x80, b lanes 0:
	VMOVDQU8.Z (DI), K1, Z6 // they add 128·0 and 0
	VPXORD Z8, Z4, Z4
	VPDPBUSD Z6, Z4, Z1
	VPDPBUSD Z6, Z9, Z3

vnnireduce:
	VPADDD Z1, Z0, Z0
	VPADDD Z3, Z2, Z2
	VPSLLD $7, Z2, Z2
	VPSUBD Z2, Z0, Z0
	VEXTRACTI64X4 $1, Z0, Y1
	VPADDD Y1, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDD X1, X0, X0
	VPSHUFD $0x4e, X0, X1
	VPADDD X1, X0, X0
	VPSHUFD $0xb1, X0, X1
	VPADDD X1, X0, X0
	VMOVD  X0, AX
	VZEROUPPER
	MOVL AX, ret+24(FP)
	RET

// func dotInt8AVX512BW(a, b *int8, n int) int32
// Without VNNI: sign-extend 32 bytes to words, VPMADDWD into pairs, add.
TEXT ·dotInt8AVX512BW(SB), NOSPLIT, $0-28
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1

bwloop64:
	CMPQ CX, $64
	JL   bwloop32
	VPMOVSXBW (SI), Z4
	VPMOVSXBW (DI), Z5
	VPMOVSXBW 32(SI), Z6
	VPMOVSXBW 32(DI), Z7
	VPMADDWD Z5, Z4, Z4
	VPMADDWD Z7, Z6, Z6
	VPADDD Z4, Z0, Z0
	VPADDD Z6, Z1, Z1
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $64, CX
	JMP  bwloop64

bwloop32:
	CMPQ CX, $32
	JL   bwtail
	VPMOVSXBW (SI), Z4
	VPMOVSXBW (DI), Z5
	VPMADDWD Z5, Z4, Z4
	VPADDD Z4, Z0, Z0
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $32, CX

bwtail:
	TESTQ CX, CX
	JEQ   bwreduce
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVD AX, K1
	VMOVDQU8.Z (SI), K1, Y4
	VMOVDQU8.Z (DI), K1, Y5
	VPMOVSXBW Y4, Z4
	VPMOVSXBW Y5, Z5
	VPMADDWD Z5, Z4, Z4
	VPADDD Z4, Z1, Z1

bwreduce:
	VPADDD Z1, Z0, Z0
	VEXTRACTI64X4 $1, Z0, Y1
	VPADDD Y1, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDD X1, X0, X0
	VPSHUFD $0x4e, X0, X1
	VPADDD X1, X0, X0
	VPSHUFD $0xb1, X0, X1
	VPADDD X1, X0, X0
	VMOVD  X0, AX
	VZEROUPPER
	MOVL AX, ret+24(FP)
	RET
