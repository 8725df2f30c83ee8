#include "textflag.h"

// func lines(addrs *uintptr, n int)
//
// PREFETCHT1: into the second-level cache and beyond (prefetch.go says why not the first).
TEXT ·lines(SB), NOSPLIT, $0-16
	MOVQ addrs+0(FP), SI
	MOVQ n+8(FP), CX
loop:
	MOVQ (SI), AX
	PREFETCHT1 (AX)
	ADDQ $8, SI
	DECQ CX
	JNZ loop
	RET
