//go:build amd64 && !purego

#include "textflag.h"

// func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL eaxArg+0(FP), AX
	MOVL ecxArg+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET

// func f16FromF32Asm(dst *uint16, src *float32, n int)
// n is a positive multiple of 8. VCVTPS2PH with immediate 0 rounds to
// nearest, ties to even, whatever MXCSR says.
TEXT ·f16FromF32Asm(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX

h32:
	CMPQ CX, $32
	JL   h8
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3
	VCVTPS2PH $0, Y0, X0
	VCVTPS2PH $0, Y1, X1
	VCVTPS2PH $0, Y2, X2
	VCVTPS2PH $0, Y3, X3
	VMOVDQU X0, (DI)
	VMOVDQU X1, 16(DI)
	VMOVDQU X2, 32(DI)
	VMOVDQU X3, 48(DI)
	ADDQ $128, SI
	ADDQ $64, DI
	SUBQ $32, CX
	JMP  h32

h8:
	CMPQ CX, $8
	JL   hdone
	VMOVUPS (SI), Y0
	VCVTPS2PH $0, Y0, X0
	VMOVDQU X0, (DI)
	ADDQ $32, SI
	ADDQ $16, DI
	SUBQ $8, CX
	JMP  h8

hdone:
	VZEROUPPER
	RET

// func f16ToF32Asm(dst *float32, src *uint16, n int)
TEXT ·f16ToF32Asm(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX

f32:
	CMPQ CX, $32
	JL   f8
	VCVTPH2PS (SI), Y0
	VCVTPH2PS 16(SI), Y1
	VCVTPH2PS 32(SI), Y2
	VCVTPH2PS 48(SI), Y3
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $64, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP  f32

f8:
	CMPQ CX, $8
	JL   fdone
	VCVTPH2PS (SI), Y0
	VMOVUPS Y0, (DI)
	ADDQ $16, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  f8

fdone:
	VZEROUPPER
	RET

// func bf16FromF32Asm(dst *uint16, src *float32, n int)
// Per element b (float32 bits): NaN (b&0x7fffffff > 0x7f800000) gives
// b>>16 | 0x40; otherwise (b + 0x7fff + (b>>16)&1) >> 16.
TEXT ·bf16FromF32Asm(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVL $1, AX
	MOVD AX, X8
	VPBROADCASTD X8, Y8   // 1
	MOVL $0x7fff, AX
	MOVD AX, X9
	VPBROADCASTD X9, Y9   // rounding bias
	MOVL $0x7fffffff, AX
	MOVD AX, X10
	VPBROADCASTD X10, Y10 // |b| mask
	MOVL $0x7f800000, AX
	MOVD AX, X11
	VPBROADCASTD X11, Y11 // +Inf
	MOVL $0x40, AX
	MOVD AX, X12
	VPBROADCASTD X12, Y12 // quiet bit of a bfloat16 NaN

b8:
	CMPQ CX, $8
	JL   bdone
	VMOVDQU (SI), Y0
	VPSRLD  $16, Y0, Y1
	VPAND   Y8, Y1, Y2
	VPADDD  Y2, Y0, Y2
	VPADDD  Y9, Y2, Y2
	VPSRLD  $16, Y2, Y2   // rounded
	VPOR    Y12, Y1, Y1   // NaN result
	VPAND   Y10, Y0, Y3
	VPCMPGTD Y11, Y3, Y3  // NaN mask
	VPBLENDVB Y3, Y1, Y2, Y2
	VEXTRACTI128 $1, Y2, X4
	VPACKUSDW X4, X2, X2
	VMOVDQU X2, (DI)
	ADDQ $32, SI
	ADDQ $16, DI
	SUBQ $8, CX
	JMP  b8

bdone:
	VZEROUPPER
	RET

// func bf16ToF32Asm(dst *float32, src *uint16, n int)
TEXT ·bf16ToF32Asm(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX

w16:
	CMPQ CX, $16
	JL   w8
	VPMOVZXWD (SI), Y0
	VPMOVZXWD 16(SI), Y1
	VPSLLD $16, Y0, Y0
	VPSLLD $16, Y1, Y1
	VMOVDQU Y0, (DI)
	VMOVDQU Y1, 32(DI)
	ADDQ $32, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  w16

w8:
	CMPQ CX, $8
	JL   wdone
	VPMOVZXWD (SI), Y0
	VPSLLD $16, Y0, Y0
	VMOVDQU Y0, (DI)
	ADDQ $16, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  w8

wdone:
	VZEROUPPER
	RET

// func quantizeAsm(dst *int8, x *float32, n int, scale, lo, hi float32, zp int32, unsigned bool) int
// Per element: v = x/scale; stop before a group of 8 with a NaN v;
// q = int32(roundeven(min(max(v, lo), hi))) + zp, packed with saturation
// (which never saturates: lo+zp and hi+zp are inside the code's range).
TEXT ·quantizeAsm(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS scale+24(FP), Y10
	VBROADCASTSS lo+28(FP), Y11
	VBROADCASTSS hi+32(FP), Y12
	VBROADCASTSS zp+36(FP), Y13
	MOVQ CX, R8              // n, to compute how many were done
	MOVBLZX unsigned+40(FP), AX
	TESTL AX, AX
	JNZ  qu8

qs8:
	CMPQ CX, $8
	JL   qdone
	VMOVUPS (SI), Y0
	VDIVPS  Y10, Y0, Y0
	VCMPPS  $3, Y0, Y0, Y1   // unordered: NaN
	VPTEST  Y1, Y1
	JNZ     qdone
	VMAXPS  Y11, Y0, Y0
	VMINPS  Y12, Y0, Y0
	VROUNDPS $0, Y0, Y0
	VCVTPS2DQ Y0, Y0
	VPADDD  Y13, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPACKSSDW X1, X0, X0
	VPACKSSWB X0, X0, X0
	MOVQ    X0, (DI)
	ADDQ $32, SI
	ADDQ $8, DI
	SUBQ $8, CX
	JMP  qs8

qu8:
	CMPQ CX, $8
	JL   qdone
	VMOVUPS (SI), Y0
	VDIVPS  Y10, Y0, Y0
	VCMPPS  $3, Y0, Y0, Y1
	VPTEST  Y1, Y1
	JNZ     qdone
	VMAXPS  Y11, Y0, Y0
	VMINPS  Y12, Y0, Y0
	VROUNDPS $0, Y0, Y0
	VCVTPS2DQ Y0, Y0
	VPADDD  Y13, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPACKSSDW X1, X0, X0
	VPACKUSWB X0, X0, X0
	MOVQ    X0, (DI)
	ADDQ $32, SI
	ADDQ $8, DI
	SUBQ $8, CX
	JMP  qu8

qdone:
	SUBQ CX, R8
	MOVQ R8, ret+48(FP)
	VZEROUPPER
	RET

// func dequantizeAsm(dst *float32, q *int8, n int, scale float32, zp int32, unsigned bool)
TEXT ·dequantizeAsm(SB), NOSPLIT, $0-33
	MOVQ dst+0(FP), DI
	MOVQ q+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS scale+24(FP), Y10
	VBROADCASTSS zp+28(FP), Y13
	MOVBLZX unsigned+32(FP), AX
	TESTL AX, AX
	JNZ  du8

ds8:
	CMPQ CX, $8
	JL   ddone
	VPMOVSXBD (SI), Y0
	VPSUBD  Y13, Y0, Y0
	VCVTDQ2PS Y0, Y0
	VMULPS  Y10, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $8, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  ds8

du8:
	CMPQ CX, $8
	JL   ddone
	VPMOVZXBD (SI), Y0
	VPSUBD  Y13, Y0, Y0
	VCVTDQ2PS Y0, Y0
	VMULPS  Y10, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $8, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  du8

ddone:
	VZEROUPPER
	RET

// func quantizeAVX512(dst *int8, x *float32, n int, scale, lo, hi float32, zp int32, unsigned bool) int
// quantizeAsm 16 at a time (n a multiple of 16), on AVX-512F: the float32
// divider is the bound, and 16-wide divisions double what it delivers per
// instruction. Narrowing with VPMOVSDB/VPMOVUSDB never saturates.
TEXT ·quantizeAVX512(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS scale+24(FP), Z10
	VBROADCASTSS lo+28(FP), Z11
	VBROADCASTSS hi+32(FP), Z12
	VBROADCASTSS zp+36(FP), Z13
	MOVQ CX, R8
	MOVBLZX unsigned+40(FP), AX
	TESTL AX, AX
	JNZ  zu16

zs16:
	CMPQ CX, $16
	JL   zdone
	VMOVUPS (SI), Z0
	VDIVPS  Z10, Z0, Z0
	VCMPPS  $3, Z0, Z0, K1
	KORTESTW K1, K1
	JNZ     zdone
	VMAXPS  Z11, Z0, Z0
	VMINPS  Z12, Z0, Z0
	VRNDSCALEPS $0, Z0, Z0
	VCVTPS2DQ Z0, Z0
	VPADDD  Z13, Z0, Z0
	VPMOVSDB Z0, X0
	VMOVDQU X0, (DI)
	ADDQ $64, SI
	ADDQ $16, DI
	SUBQ $16, CX
	JMP  zs16

zu16:
	CMPQ CX, $16
	JL   zdone
	VMOVUPS (SI), Z0
	VDIVPS  Z10, Z0, Z0
	VCMPPS  $3, Z0, Z0, K1
	KORTESTW K1, K1
	JNZ     zdone
	VMAXPS  Z11, Z0, Z0
	VMINPS  Z12, Z0, Z0
	VRNDSCALEPS $0, Z0, Z0
	VCVTPS2DQ Z0, Z0
	VPADDD  Z13, Z0, Z0
	VPMOVUSDB Z0, X0
	VMOVDQU X0, (DI)
	ADDQ $64, SI
	ADDQ $16, DI
	SUBQ $16, CX
	JMP  zu16

zdone:
	SUBQ CX, R8
	MOVQ R8, ret+48(FP)
	VZEROUPPER
	RET
