//go:build amd64 && !purego

#include "textflag.h"

// Per-channel (last-axis) quantization: element i has its own scale and
// zero point, loaded beside the data (no gather). Per element:
// v = x[i]/scales[i]; a group with a NaN v stops the kernel;
// q = saturate(roundeven(clamp(v, -512, 512)) + zp[i]). The float clamp
// only keeps the conversion in range: with |zp| <= 255, every v beyond
// ±512 saturates either way. zpStep is 8 (16 for AVX-512) bytes per group,
// or 0 with zps pointing at zeros when there are no zero points.

// func quantizeChannelsAVX2(dst *int8, x, scales *float32, zps *int8, zpStep, n int, unsigned bool) int
TEXT ·quantizeChannelsAVX2(SB), NOSPLIT, $0-64
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ scales+16(FP), R9
	MOVQ zps+24(FP), R10
	MOVQ zpStep+32(FP), R11
	MOVQ n+40(FP), CX
	MOVQ CX, R8
	MOVL $0xc4000000, AX // -512
	MOVD AX, X11
	VBROADCASTSS X11, Y11
	MOVL $0x44000000, AX // 512
	MOVD AX, X12
	VBROADCASTSS X12, Y12
	MOVBLZX unsigned+48(FP), AX
	TESTL AX, AX
	JNZ  cu8

cs8:
	CMPQ CX, $8
	JL   cdone
	VMOVUPS (SI), Y0
	VDIVPS  (R9), Y0, Y0
	VCMPPS  $3, Y0, Y0, Y1 // unordered: NaN
	VPTEST  Y1, Y1
	JNZ     cdone
	VMAXPS  Y11, Y0, Y0
	VMINPS  Y12, Y0, Y0
	VROUNDPS $0, Y0, Y0
	VCVTPS2DQ Y0, Y0
	VPMOVSXBD (R10), Y2
	VPADDD  Y2, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPACKSSDW X1, X0, X0 // in [-640, 767]: no saturation here
	VPACKSSWB X0, X0, X0 // saturates to [-128, 127]
	MOVQ    X0, (DI)
	ADDQ $32, SI
	ADDQ $32, R9
	ADDQ R11, R10
	ADDQ $8, DI
	SUBQ $8, CX
	JMP  cs8

cu8:
	CMPQ CX, $8
	JL   cdone
	VMOVUPS (SI), Y0
	VDIVPS  (R9), Y0, Y0
	VCMPPS  $3, Y0, Y0, Y1
	VPTEST  Y1, Y1
	JNZ     cdone
	VMAXPS  Y11, Y0, Y0
	VMINPS  Y12, Y0, Y0
	VROUNDPS $0, Y0, Y0
	VCVTPS2DQ Y0, Y0
	VPMOVZXBD (R10), Y2
	VPADDD  Y2, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPACKSSDW X1, X0, X0
	VPACKUSWB X0, X0, X0 // saturates to [0, 255]
	MOVQ    X0, (DI)
	ADDQ $32, SI
	ADDQ $32, R9
	ADDQ R11, R10
	ADDQ $8, DI
	SUBQ $8, CX
	JMP  cu8

cdone:
	SUBQ CX, R8
	MOVQ R8, ret+56(FP)
	VZEROUPPER
	RET

// func quantizeChannelsAVX512(dst *int8, x, scales *float32, zps *int8, zpStep, n int, unsigned bool) int
// 16 at a time; n is a multiple of 16. VPMOVSDB saturates to int8; for
// uint8, VPMAXSD with 0 first, then VPMOVUSDB saturates to 255.
TEXT ·quantizeChannelsAVX512(SB), NOSPLIT, $0-64
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ scales+16(FP), R9
	MOVQ zps+24(FP), R10
	MOVQ zpStep+32(FP), R11
	MOVQ n+40(FP), CX
	MOVQ CX, R8
	MOVL $0xc4000000, AX
	VPBROADCASTD AX, Z11
	MOVL $0x44000000, AX
	VPBROADCASTD AX, Z12
	VPXORD Z13, Z13, Z13
	MOVBLZX unsigned+48(FP), AX
	TESTL AX, AX
	JNZ  zcu16

zcs16:
	CMPQ CX, $16
	JL   zcdone
	VMOVUPS (SI), Z0
	VDIVPS  (R9), Z0, Z0
	VCMPPS  $3, Z0, Z0, K1
	KORTESTW K1, K1
	JNZ     zcdone
	VMAXPS  Z11, Z0, Z0
	VMINPS  Z12, Z0, Z0
	VRNDSCALEPS $0, Z0, Z0
	VCVTPS2DQ Z0, Z0
	VPMOVSXBD (R10), Z2
	VPADDD  Z2, Z0, Z0
	VPMOVSDB Z0, X0
	VMOVDQU X0, (DI)
	ADDQ $64, SI
	ADDQ $64, R9
	ADDQ R11, R10
	ADDQ $16, DI
	SUBQ $16, CX
	JMP  zcs16

zcu16:
	CMPQ CX, $16
	JL   zcdone
	VMOVUPS (SI), Z0
	VDIVPS  (R9), Z0, Z0
	VCMPPS  $3, Z0, Z0, K1
	KORTESTW K1, K1
	JNZ     zcdone
	VMAXPS  Z11, Z0, Z0
	VMINPS  Z12, Z0, Z0
	VRNDSCALEPS $0, Z0, Z0
	VCVTPS2DQ Z0, Z0
	VPMOVZXBD (R10), Z2
	VPADDD  Z2, Z0, Z0
	VPMAXSD Z13, Z0, Z0
	VPMOVUSDB Z0, X0
	VMOVDQU X0, (DI)
	ADDQ $64, SI
	ADDQ $64, R9
	ADDQ R11, R10
	ADDQ $16, DI
	SUBQ $16, CX
	JMP  zcu16

zcdone:
	SUBQ CX, R8
	MOVQ R8, ret+56(FP)
	VZEROUPPER
	RET

// func dequantizeChannelsAVX2(dst *float32, q *int8, scales *float32, zps *int8, zpStep, n int, unsigned bool)
// dst[i] = float32(q[i] - zp[i]) * scales[i], 8 at a time.
TEXT ·dequantizeChannelsAVX2(SB), NOSPLIT, $0-49
	MOVQ dst+0(FP), DI
	MOVQ q+8(FP), SI
	MOVQ scales+16(FP), R9
	MOVQ zps+24(FP), R10
	MOVQ zpStep+32(FP), R11
	MOVQ n+40(FP), CX
	MOVBLZX unsigned+48(FP), AX
	TESTL AX, AX
	JNZ  dcu8

dcs8:
	CMPQ CX, $8
	JL   dcdone
	VPMOVSXBD (SI), Y0
	VPMOVSXBD (R10), Y1
	VPSUBD  Y1, Y0, Y0
	VCVTDQ2PS Y0, Y0
	VMULPS  (R9), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $8, SI
	ADDQ $32, R9
	ADDQ R11, R10
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  dcs8

dcu8:
	CMPQ CX, $8
	JL   dcdone
	VPMOVZXBD (SI), Y0
	VPMOVZXBD (R10), Y1
	VPSUBD  Y1, Y0, Y0
	VCVTDQ2PS Y0, Y0
	VMULPS  (R9), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $8, SI
	ADDQ $32, R9
	ADDQ R11, R10
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  dcu8

dcdone:
	VZEROUPPER
	RET

// func dequantizeChannelsAVX512(dst *float32, q *int8, scales *float32, zps *int8, zpStep, n int, unsigned bool)
// dequantizeChannelsAVX2 16 at a time; n is a multiple of 16.
TEXT ·dequantizeChannelsAVX512(SB), NOSPLIT, $0-49
	MOVQ dst+0(FP), DI
	MOVQ q+8(FP), SI
	MOVQ scales+16(FP), R9
	MOVQ zps+24(FP), R10
	MOVQ zpStep+32(FP), R11
	MOVQ n+40(FP), CX
	MOVBLZX unsigned+48(FP), AX
	TESTL AX, AX
	JNZ  zdcu16

zdcs16:
	CMPQ CX, $16
	JL   zdcdone
	VPMOVSXBD (SI), Z0
	VPMOVSXBD (R10), Z1
	VPSUBD  Z1, Z0, Z0
	VCVTDQ2PS Z0, Z0
	VMULPS  (R9), Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ $16, SI
	ADDQ $64, R9
	ADDQ R11, R10
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  zdcs16

zdcu16:
	CMPQ CX, $16
	JL   zdcdone
	VPMOVZXBD (SI), Z0
	VPMOVZXBD (R10), Z1
	VPSUBD  Z1, Z0, Z0
	VCVTDQ2PS Z0, Z0
	VMULPS  (R9), Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ $16, SI
	ADDQ $64, R9
	ADDQ R11, R10
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  zdcu16

zdcdone:
	VZEROUPPER
	RET
