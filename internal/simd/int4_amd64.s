//go:build amd64 && !purego

#include "textflag.h"

// Block-wise int4 (package quant's Int4Blocks): blockSize is a positive
// multiple of 16 and every block is whole. A block's scale is d = m/-8,
// m its first value of largest magnitude; codes are
// clamp(roundeven(x·(1/d)), -8, 7) + 8, element 2i in the low nibble of
// byte i. d = 0 and codes 8 when 1/d is infinite (an all-zero block, or
// one so small that m/-8 underflows).

// func quantizeInt4AVX2(data *byte, scales, x *float32, nblocks, blockSize int) int
// It returns how many blocks it encoded, stopping before the first block
// holding a NaN or ±Inf.
TEXT ·quantizeInt4AVX2(SB), NOSPLIT, $0-48
	MOVQ data+0(FP), DI
	MOVQ scales+8(FP), R9
	MOVQ x+16(FP), SI
	MOVQ nblocks+24(FP), R8
	MOVQ blockSize+32(FP), R12
	XORQ BX, BX                // blocks done
	MOVL $0x7fffffff, AX
	MOVD AX, X15
	VPBROADCASTD X15, Y15      // |x| mask
	MOVL $0x40e00000, AX       // 7.0
	MOVD AX, X7
	VPBROADCASTD X7, Y7
	MOVL $0xc1000000, AX       // -8.0
	MOVD AX, X8
	VPBROADCASTD X8, Y8
	MOVL $8, AX
	MOVD AX, X9
	VPBROADCASTD X9, Y9        // the code offset
	MOVL $0x0c080400, AX       // bytes 0, 4, 8, 12 of each lane
	MOVD AX, X10
	VPBROADCASTD X10, Y10
	MOVL $0xbe000000, AX       // -0.125
	MOVD AX, X11
	MOVL $0x3f800000, AX       // 1.0
	MOVD AX, X12
	MOVL $0x7f800000, AX       // +Inf
	MOVD AX, X13

i4block:
	CMPQ BX, R8
	JGE  i4done

	// Pass 1: the largest magnitude, and whether any v-v is not 0.
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ SI, AX
	MOVQ R12, CX

i4max:
	VMOVUPS (AX), Y0
	VSUBPS  Y0, Y0, Y1         // +0, or NaN for NaN and ±Inf
	VORPS   Y1, Y3, Y3
	VANDPS  Y15, Y0, Y0
	VMAXPS  Y0, Y2, Y2
	ADDQ $32, AX
	SUBQ $8, CX
	JNZ  i4max
	VPTEST Y3, Y3
	JNZ    i4done
	VPERM2F128 $1, Y2, Y2, Y1
	VMAXPS Y1, Y2, Y2
	VPERMILPS $0x4e, Y2, Y1
	VMAXPS Y1, Y2, Y2
	VPERMILPS $0xb1, Y2, Y1
	VMAXPS Y1, Y2, Y2          // every lane: the largest magnitude

	// Pass 2: the first element of that magnitude (there is one). The
	// chunks go from last to first, each hit replacing the index by a
	// conditional move: no branch on the data to mispredict.
	LEAQ -32(SI)(R12*4), AX
	MOVQ R12, CX
	SUBQ $8, CX
	XORQ DX, DX

i4find:
	VANDPS  (AX), Y15, Y0
	VCMPPS  $0, Y2, Y0, Y1
	VMOVMSKPS Y1, R10
	BSFL    R10, R11           // ZF set when no lane matched
	LEAQ    (CX)(R11*1), R13
	CMOVQNE R13, DX
	SUBQ $32, AX
	SUBQ $8, CX
	JGE  i4find

	VMOVSS (SI)(DX*4), X4
	VMULSS X11, X4, X4         // d = m/-8 (exact as a product by -0.125)
	VDIVSS X4, X12, X5         // 1/d
	VANDPS X15, X5, X6
	VUCOMISS X13, X6
	JNE  i4scale
	VXORPS X4, X4, X4
	VXORPS X5, X5, X5

i4scale:
	VMOVSS X4, (R9)
	VBROADCASTSS X5, Y5

	// Pass 3: codes, 16 at a time into 8 bytes.
	MOVQ SI, AX
	MOVQ R12, CX

i4code:
	VMULPS (AX), Y5, Y0
	VMULPS 32(AX), Y5, Y1
	VMINPS Y7, Y0, Y0
	VMINPS Y7, Y1, Y1
	VMAXPS Y8, Y0, Y0
	VMAXPS Y8, Y1, Y1
	VROUNDPS $0, Y0, Y0
	VROUNDPS $0, Y1, Y1
	VCVTPS2DQ Y0, Y0
	VCVTPS2DQ Y1, Y1
	VPADDD Y9, Y0, Y0
	VPADDD Y9, Y1, Y1
	VPACKSSDW Y1, Y0, Y0       // words: 0-3, 8-11 | 4-7, 12-15
	VPERMQ $0xd8, Y0, Y0       // words 0-15 in order
	VPSRLD $12, Y0, Y1
	VPOR   Y1, Y0, Y0          // dword k, low byte: code 2k | code 2k+1 << 4
	VPSHUFB Y10, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPUNPCKLDQ X1, X0, X0
	MOVQ X0, (DI)
	ADDQ $64, AX
	ADDQ $8, DI
	SUBQ $16, CX
	JNZ  i4code

	MOVQ AX, SI
	ADDQ $4, R9
	INCQ BX
	JMP  i4block

i4done:
	MOVQ BX, ret+40(FP)
	VZEROUPPER
	RET

// func dequantizeInt4AVX2(dst *float32, data *byte, scales *float32, nblocks, blockSize int)
// dst[i] = float32(code_i - 8) · scale of i's block, 16 at a time.
TEXT ·dequantizeInt4AVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ data+8(FP), SI
	MOVQ scales+16(FP), R9
	MOVQ nblocks+24(FP), R8
	MOVQ blockSize+32(FP), R12
	MOVL $0x0f000f00, AX
	MOVD AX, X6
	VPBROADCASTD X6, X6        // high nibble of each word, moved up
	MOVL $0x000f000f, AX
	MOVD AX, X7
	VPBROADCASTD X7, X7
	MOVL $8, AX
	MOVD AX, X8
	VPBROADCASTD X8, Y8

d4block:
	TESTQ R8, R8
	JEQ   d4done
	VBROADCASTSS (R9), Y5
	MOVQ R12, CX

d4chunk:
	VPMOVZXBW (SI), X0         // 8 bytes, one per word
	VPSLLW $4, X0, X1
	VPAND  X6, X1, X1
	VPAND  X7, X0, X0
	VPOR   X1, X0, X0          // 16 codes, one per byte, in order
	VPMOVZXBD X0, Y1
	VPSRLDQ $8, X0, X0
	VPMOVZXBD X0, Y2
	VPSUBD Y8, Y1, Y1
	VPSUBD Y8, Y2, Y2
	VCVTDQ2PS Y1, Y1
	VCVTDQ2PS Y2, Y2
	VMULPS Y5, Y1, Y1
	VMULPS Y5, Y2, Y2
	VMOVUPS Y1, (DI)
	VMOVUPS Y2, 32(DI)
	ADDQ $8, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JNZ  d4chunk

	ADDQ $4, R9
	DECQ R8
	JMP  d4block

d4done:
	VZEROUPPER
	RET

// func quantizeInt4AVX512(data *byte, scales, x *float32, nblocks, blockSize int) int
// quantizeInt4AVX2 16 lanes at a time: VPMOVDB narrows the codes to bytes
// and VPMOVWB packs byte pairs into nibbles, so a group of 16 values
// takes half the instructions.
TEXT ·quantizeInt4AVX512(SB), NOSPLIT, $0-48
	MOVQ data+0(FP), DI
	MOVQ scales+8(FP), R9
	MOVQ x+16(FP), SI
	MOVQ nblocks+24(FP), R8
	MOVQ blockSize+32(FP), R12
	XORQ BX, BX
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z15       // |x| mask
	MOVL $0x40e00000, AX       // 7.0
	VPBROADCASTD AX, Z7
	MOVL $0xc1000000, AX       // -8.0
	VPBROADCASTD AX, Z8
	MOVL $8, AX
	VPBROADCASTD AX, Z9
	MOVL $0xbe000000, AX       // -0.125
	MOVD AX, X11
	MOVL $0x3f800000, AX       // 1.0
	MOVD AX, X12
	MOVL $0x7f800000, AX       // +Inf
	MOVD AX, X13

z4block:
	CMPQ BX, R8
	JGE  z4done
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	MOVQ SI, AX
	MOVQ R12, CX

z4max:
	VMOVUPS (AX), Z0
	VSUBPS  Z0, Z0, Z1         // +0, or NaN for NaN and ±Inf
	VPORD   Z1, Z3, Z3
	VPANDD  Z15, Z0, Z0
	VMAXPS  Z0, Z2, Z2
	ADDQ $64, AX
	SUBQ $16, CX
	JNZ  z4max
	VPTESTMD Z3, Z3, K1
	KORTESTW K1, K1
	JNZ      z4done
	VSHUFF32X4 $0x4e, Z2, Z2, Z1
	VMAXPS Z1, Z2, Z2
	VSHUFF32X4 $0xb1, Z2, Z2, Z1
	VMAXPS Z1, Z2, Z2
	VPERMILPS $0x4e, Z2, Z1
	VMAXPS Z1, Z2, Z2
	VPERMILPS $0xb1, Z2, Z1
	VMAXPS Z1, Z2, Z2          // every lane: the largest magnitude

	// The first element of that magnitude, chunks from last to first.
	LEAQ -64(SI)(R12*4), AX
	MOVQ R12, CX
	SUBQ $16, CX
	XORQ DX, DX

z4find:
	VPANDD  (AX), Z15, Z0
	VCMPPS  $0, Z2, Z0, K1
	KMOVW   K1, R10
	BSFL    R10, R11
	LEAQ    (CX)(R11*1), R13
	CMOVQNE R13, DX
	SUBQ $64, AX
	SUBQ $16, CX
	JGE  z4find

	VMOVSS (SI)(DX*4), X4
	VMULSS X11, X4, X4         // d = m/-8
	VDIVSS X4, X12, X5         // 1/d
	VANDPS X15, X5, X6
	VUCOMISS X13, X6
	JNE  z4scale
	VXORPS X4, X4, X4
	VXORPS X5, X5, X5

z4scale:
	VMOVSS X4, (R9)
	VBROADCASTSS X5, Z5
	MOVQ SI, AX
	MOVQ R12, CX

z4code:
	VMULPS (AX), Z5, Z0
	VMINPS Z7, Z0, Z0
	VMAXPS Z8, Z0, Z0
	VRNDSCALEPS $0, Z0, Z0
	VCVTPS2DQ Z0, Z0
	VPADDD Z9, Z0, Z0
	VPMOVDB Z0, X0             // 16 codes, one per byte
	VPSRLW $4, X0, X1
	VPOR   X1, X0, X0          // word k, low byte: code 2k | code 2k+1 << 4
	VPMOVWB X0, X0
	MOVQ X0, (DI)
	ADDQ $64, AX
	ADDQ $8, DI
	SUBQ $16, CX
	JNZ  z4code

	MOVQ AX, SI
	ADDQ $4, R9
	INCQ BX
	JMP  z4block

z4done:
	MOVQ BX, ret+40(FP)
	VZEROUPPER
	RET
