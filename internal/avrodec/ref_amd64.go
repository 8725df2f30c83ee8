package avrodec

import (
	"unsafe"

	"github.com/pipelined/pipelined/agg"
)

// decodeRefBatch is decodeRef for a batch, in assembly (ref_amd64.s): for k from 0, it
// decodes bs[k] into the reading k places after rs and sets the bool k places after ok to
// true, until a payload it does not decode (one whose length is not lenMin to
// lenMin+lenSpan, or on which decodeRef would give up), and returns how many it decoded; it
// may have written part of the next reading.
//
// Per message it leaves out what Go spends around decodeRef's straight-line code: the call
// (arguments, the return's error, the Decode before it), a bounds check per load, and the
// values moved between registers where each varint's length cases meet (bench/RESULTS.md,
// phase 34).
//
//go:noescape
func decodeRefBatch(bs [][]byte, rs *agg.Reading, ok *bool, p *refPlan, lenMin int, lenSpan uint) int

// The offsets and sizes ref_amd64.s uses: a constant index out of range fails the build.
var (
	_ = [1]int{}[unsafe.Offsetof(agg.Reading{}.Key)]
	_ = [1]int{}[unsafe.Offsetof(agg.Reading{}.TimeMs)-8]
	_ = [1]int{}[unsafe.Offsetof(agg.Reading{}.Status)-16]
	_ = [1]int{}[unsafe.Offsetof(agg.Reading{}.Values)-24]
	_ = [1]int{}[unsafe.Sizeof(agg.Reading{})-88]
	_ = [1]int{}[unsafe.Sizeof([]byte{})-24]
	_ = [1]int{}[unsafe.Sizeof(refVarint{})-16]
	_ = [1]int{}[unsafe.Offsetof(refVarint{}.slot)]
	_ = [1]int{}[unsafe.Offsetof(refVarint{}.lim)-8]
	_ = [1]int{}[refLen-36]
)
