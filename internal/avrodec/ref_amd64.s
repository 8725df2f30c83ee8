#include "textflag.h"

// Offsets in agg.Reading (ref_amd64.go checks them) and in refPlan.
#define rKey 0
#define rTime 8
#define rStatus 16
#define rValues 24
#define pSlot(k) (16*k)
#define pLim(k) (16*k+8)

// UVARINT_WORD is uvarintWord: the varint at the start of AX, the next 8 bytes, to BX and its
// length to CX (9 where none ends within AX). R10 must hold 0x8080808080808080 and R11
// 0x7f7f7f7f7f7f7f7f (they do throughout); it clobbers DX and R12. Each packing step moves
// the upper groups down and clears them with an XOR: they are a subset of the word, where
// Go's mask needs a register of its own.
#define UVARINT_WORD \
	MOVQ    AX, DX \
	NOTQ    DX \
	ANDQ    R10, DX \
	LEAQ    -1(DX), BX \
	XORQ    DX, BX \
	ANDQ    R11, BX \
	ANDQ    AX, BX \
	MOVQ    $0x7f007f007f007f00, R12 \
	ANDQ    BX, R12 \
	XORQ    R12, BX \
	SHRQ    $1, R12 \
	ORQ     R12, BX \
	MOVQ    $0x3fff00003fff0000, R12 \
	ANDQ    BX, R12 \
	XORQ    R12, BX \
	SHRQ    $2, R12 \
	ORQ     R12, BX \
	MOVQ    $0x0fffffff00000000, R12 \
	ANDQ    BX, R12 \
	XORQ    R12, BX \
	SHRQ    $4, R12 \
	ORQ     R12, BX \
	BSFQ    DX, CX \
	MOVL    $64, R12 \
	CMOVQEQ R12, CX \
	SHRQ    $3, CX \
	INCQ    CX

// LIM(k) gives up unless the varint of length CX and value BX is within refPlan[k].lim.
#define LIM(k) \
	MOVQ CX, DX \
	SHLQ $56, DX \
	ORQ  BX, DX \
	CMPQ DX, pLim(k)(R9) \
	JHI  done

// VARINT(k, two, three, long, end) is the first or second varint, k, from its word in AX:
// shortVarint's branches on lengths 1 to 3, which let the loads after it start before it is
// decoded, UVARINT_WORD and LIM for the longer, to BX and its length to CX; then on to end.
// The labels are the caller's, one set per use.
#define VARINT(k, two, three, long, end) \
	TESTL $0x80, AX \
	JNZ   two \
	MOVL  AX, BX \
	ANDL  $0x7f, BX \
	MOVL  $1, CX \
	JMP   end \
two: \
	TESTL $0x8000, AX \
	JNZ   three \
	MOVL  AX, BX \
	ANDL  $0x7f, BX \
	SHRL  $1, AX \
	ANDL  $0x3f80, AX \
	ORL   AX, BX \
	MOVL  $2, CX \
	JMP   end \
three: \
	TESTL $0x800000, AX \
	JNZ   long \
	MOVL  AX, BX \
	ANDL  $0x7f, BX \
	MOVL  AX, DX \
	SHRL  $1, DX \
	ANDL  $0x3f80, DX \
	ORL   DX, BX \
	SHRL  $2, AX \
	ANDL  $0x1fc000, AX \
	ORL   AX, BX \
	MOVL  $3, CX \
	JMP   end \
long: \
	UVARINT_WORD \
	LIM(k)

// STORE(k) keeps the varint BX in its slot (out, on the stack).
#define STORE(k) \
	MOVBQZX pSlot(k)(R9), DX \
	ANDL    $3, DX \
	MOVQ    BX, 0(SP)(DX*8)

// ZIGZAG(slot, field, MOV) writes the zig-zag decoded varint of slot to field of the reading.
#define ZIGZAG(slot, field, MOV) \
	MOVQ (8*slot)(SP), AX \
	MOVQ AX, BX \
	SHRQ $1, AX \
	ANDL $1, BX \
	NEGQ BX \
	XORQ BX, AX \
	MOV  AX, field(DI)

// func decodeRefBatch(bs [][]byte, rs *agg.Reading, ok *bool, p *refPlan, lenMin int, lenSpan uint) int
//
// decodeRef for each of bs in turn, the same steps in the same order, into rs[0], rs[1], ...
// and ok[0], ok[1], ..., until a payload is not lenMin to lenMin+lenSpan bytes long (Decode's
// fastMin and fastSpan) or decodeRef would give up on it; it returns how many it decoded. A
// varint of 1 to 3 bytes needs no LIM: 21 bits and 3 bytes are within both lims planRef gives
// (TestPlanRef). Every load is within the payload, which nothing else checks here: it is at
// least refLen (36) bytes long, the first two varints take at most 8 bytes each (LIM), and
// the doubles' room is checked (TestDecodeRefBatchInBounds).
//
// Registers: R14 the next of bs (ABI0 code may use it; the Go code calling it gets g back),
// DI its reading, SI its bytes, R8 their length, R13 the offset in them, R9 p; the rest are
// scratch. On the stack: out, the varints by slot (0-31), how many of bs are left (32), and
// the next ok (40).
TEXT ·decodeRefBatch(SB), NOSPLIT, $48-72
	MOVQ  bs_base+0(FP), R14
	MOVQ  bs_len+8(FP), AX
	MOVQ  AX, 32(SP)
	MOVQ  rs+24(FP), DI
	MOVQ  ok+32(FP), AX
	MOVQ  AX, 40(SP)
	MOVQ  p+40(FP), R9
	MOVQ  $0x8080808080808080, R10 // for UVARINT_WORD
	MOVQ  $0x7f7f7f7f7f7f7f7f, R11
	XORPS  X0, X0
	MOVUPS X0, 0(SP)  // out[0:2]
	MOVUPS X0, 16(SP) // out[2:4]: a slot no varint has (no status) stays 0

next:
	DECQ 32(SP)
	JLT  done
	MOVQ 0(R14), SI
	MOVQ 8(R14), R8
	MOVQ R8, AX
	SUBQ lenMin+48(FP), AX
	CMPQ AX, lenSpan+56(FP)
	JHI  done
	CMPQ R8, $36 // refLen, which lenMin is too (TestPlanRef)
	JLT  done

	// The first varint, from the word at b[0].
	MOVQ (SI), AX
	VARINT(0, a2, a3, along, astore)

astore:
	STORE(0)
	MOVQ CX, R13 // at most 8: LIM

	// The second, from the word after it: b[R13:R13+8] is in b, as R13 <= 8 and len(b) >= 36.
	MOVQ (SI)(R13*1), AX
	VARINT(1, b2, b3, blong, bstore)

bstore:
	STORE(1)
	ADDQ CX, R13

	// The doubles, and zeros for the measures not configured.
	MOVQ   R8, AX
	SUBQ   R13, AX
	CMPQ   AX, $32
	JLT    done
	MOVUPS (SI)(R13*1), X1
	MOVUPS 16(SI)(R13*1), X2
	MOVUPS X1, rValues(DI)
	MOVUPS X2, (rValues+16)(DI)
	MOVUPS X0, (rValues+32)(DI)
	MOVUPS X0, (rValues+48)(DI)

	// The last two varints, which end b, from the word that ends b with the bytes before each
	// shifted out. R13 is now how many bytes are left for them.
	SUBQ  $32, AX
	CMPQ  AX, $8
	JGT   done
	MOVQ  AX, R13
	MOVQ  -8(SI)(R8*1), AX
	LEAQ  (R13*8), CX
	NEGQ  CX               // 8*(8-R13), modulo 64 as the shift takes it
	SHRQ  CX, AX
	TESTL $0x80, AX
	JNZ   clong
	MOVL  AX, BX
	ANDL  $0x7f, BX
	MOVL  $1, CX
	JMP   cstore

clong:
	UVARINT_WORD
	LIM(2)

cstore:
	STORE(2)
	SUBQ CX, R13 // a third that takes the bytes the fourth needs leaves the fourth the wrong length

	MOVQ  -8(SI)(R8*1), AX
	LEAQ  (R13*8), CX
	NEGQ  CX
	SHRQ  CX, AX
	TESTL $0x80, AX
	JNZ   dlong
	MOVL  AX, BX
	ANDL  $0x7f, BX
	MOVL  $1, CX
	JMP   dcheck

dlong:
	UVARINT_WORD
	LIM(3)

dcheck:
	CMPQ CX, R13 // the fourth ends b
	JNE  done
	STORE(3)
	ZIGZAG(0, rKey, MOVQ)    // slotKey
	ZIGZAG(1, rTime, MOVQ)   // slotTime
	ZIGZAG(2, rStatus, MOVL) // slotStatus
	MOVQ 40(SP), AX
	MOVB $1, (AX)
	INCQ 40(SP)
	ADDQ $24, R14
	ADDQ $88, DI // the size of agg.Reading
	JMP  next

done:
	MOVQ bs_len+8(FP), AX
	SUBQ 32(SP), AX
	DECQ AX // the one given up on, or the -1 left when all are done
	MOVQ AX, ret+64(FP)
	RET
