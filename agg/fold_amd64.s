#include "textflag.h"

// -0.0 four times: what a NaN value adds to a sum.
DATA negzero<>+0(SB)/8, $0x8000000000000000
DATA negzero<>+8(SB)/8, $0x8000000000000000
DATA negzero<>+16(SB)/8, $0x8000000000000000
DATA negzero<>+24(SB)/8, $0x8000000000000000
GLOBL negzero<>(SB), RODATA|NOPTR, $32

// func foldMeasures(p *uint64, vs *[MaxMeasures]float64, m int)
//
// foldMeasuresGo without AVX; with it, four measures at a time, then one at a time. VMINPD
// and VMAXPD give their second source, the row's min or max, where the value (the first) is
// a NaN or does not beat it; VBLENDVPD puts -0.0 in place of a NaN value for the sum.
TEXT ·foldMeasures(SB), NOSPLIT, $0-24
	CMPB ·hasAVX(SB), $0
	JEQ  noavx
	MOVQ p+0(FP), DI    // mins
	MOVQ vs+8(FP), SI
	MOVQ m+16(FP), CX
	LEAQ (DI)(CX*8), R8 // maxes
	LEAQ (R8)(CX*8), R9 // sums
	XORQ DX, DX
	SUBQ $3, CX         // fours while k < m-3
	JMP  check4

four:
	VMOVUPD   (SI)(DX*8), Y0
	VMINPD    (DI)(DX*8), Y0, Y1 // value < min ? value : min
	VMOVUPD   Y1, (DI)(DX*8)
	VMAXPD    (R8)(DX*8), Y0, Y1 // value > max ? value : max
	VMOVUPD   Y1, (R8)(DX*8)
	VCMPPD    $3, Y0, Y0, Y1     // unordered: all ones where the value is a NaN
	VBLENDVPD Y1, negzero<>(SB), Y0, Y0
	VADDPD    (R9)(DX*8), Y0, Y0
	VMOVUPD   Y0, (R9)(DX*8)
	ADDQ      $4, DX

check4:
	CMPQ DX, CX
	JLT  four
	ADDQ $3, CX // m
	JMP  check1

one:
	VMOVSD   (SI)(DX*8), X0
	VMINSD   (DI)(DX*8), X0, X1
	VMOVSD   X1, (DI)(DX*8)
	VMAXSD   (R8)(DX*8), X0, X1
	VMOVSD   X1, (R8)(DX*8)
	VUCOMISD X0, X0
	JPS      next // a NaN: no sum
	VADDSD   (R9)(DX*8), X0, X0
	VMOVSD   X0, (R9)(DX*8)

next:
	INCQ DX

check1:
	CMPQ DX, CX
	JLT  one
	VZEROUPPER
	RET

noavx:
	JMP ·foldMeasuresGo(SB)
