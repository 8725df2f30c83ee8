package avrodec

import (
	"encoding/binary"
	"math"

	"github.com/pipelined/pipelined/agg"
)

// The reference's layout is SensorData's: two ints, four doubles, an int and a long, whatever
// their roles. Decode reads records of that layout with decodeRef, straight-line code that
// knows where every field starts, where the fast plan's loop finds its way step by step: about
// 200 instructions for the 41-byte record against 280 (bench/RESULTS.md, phase 24). Any other
// layout takes the fast plan. decodeRef gives up on what it does not do (a varint of
// 9 bytes or more, the last two varints taking more than 8 bytes, a varint too long or too
// large for its field, a payload that ends early or goes on after the record), and the fast
// plan starts over.
type refPlan [4]refVarint // the varints in their order

// refVarint is one varint of the reference's layout.
type refVarint struct {
	slot uint8 // Decode's slot for it
	// lim bounds the varint's length n and value v in one compare: uint64(n)<<56 | v <= lim.
	// A varint of up to 8 bytes holds 56 bits; uvarintWord gives 9 for a longer one.
	lim uint64
}

// The lims of an int (5 bytes, 32 bits) and a long (the 8 bytes uvarintWord reads).
const (
	refIntLim  = 5<<56 | maxInt32V
	refLongLim = 8<<56 | (1<<56 - 1)
)

// refLen is the fewest bytes a record of the reference's layout takes: four one-byte
// varints and four doubles.
const refLen = 4 + 4*8

// planRef returns the reference's plan of a fast plan, or ok false when it has another
// layout, or a varint whose bounds lim cannot hold (a status long: up to 10 bytes, 32 bits).
func planRef(fast []fastStep) (p refPlan, ok bool) {
	if len(fast) != 5 || fast[2].op != fDoubles || fast[2].n != 4 || fast[2].idx != 0 {
		return refPlan{}, false
	}
	k := 0
	for j, s := range fast {
		if j == 2 {
			continue
		}
		v := refVarint{slot: s.idx}
		switch {
		case s.op != fVarint:
			return refPlan{}, false
		case s.maxLen == maxInt32Len && s.maxV == maxInt32V:
			v.lim = refIntLim
		case s.maxLen == maxInt64Len && s.maxV == maxInt64V:
			v.lim = refLongLim
		default:
			return refPlan{}, false
		}
		p[k] = v
		k++
	}
	return p, true
}

// shortVarint decodes the varint at the start of x, the next 8 bytes in little-endian order,
// if it takes 3 bytes or fewer, or returns a length of 0. Its lengths are branches rather than
// uvarintWord's arithmetic: predicted, they let the loads after the varint start before it is
// decoded (uvarintWord's length waits for the load).
func shortVarint(x uint64) (uint64, int) {
	switch {
	case x&0x80 == 0:
		return x & 0x7f, 1
	case x&0x8000 == 0:
		return x&0x7f | x>>1&0x3f80, 2
	case x&0x800000 == 0:
		return x&0x7f | x>>1&0x3f80 | x>>2&0x1fc000, 3
	}
	return 0, 0
}

// decodeRef is Decode for a record of the reference's layout, at least refLen bytes long
// (Decode's fastMin). DecodeBatch's assembly (ref_amd64.s) takes the same steps.
func (d *Decoder) decodeRef(b []byte, r *agg.Reading) error {
	p := &d.ref
	var out [4]uint64 // by slot
	// The first two varints from the words at their starts: b has room for both words.
	x := binary.LittleEndian.Uint64(b[:8])
	v, n := shortVarint(x)
	if n == 0 {
		v, n = uvarintWord(x)
	}
	if uint64(n)<<56|v > p[0].lim {
		return d.decodeFast(b, r)
	}
	out[p[0].slot&3] = v
	i := n
	x = binary.LittleEndian.Uint64(b[i : i+8])
	if v, n = shortVarint(x); n == 0 {
		v, n = uvarintWord(x)
	}
	if uint64(n)<<56|v > p[1].lim {
		return d.decodeFast(b, r)
	}
	out[p[1].slot&3] = v
	i += n
	// The doubles. (Whether the last two varints have room is checked with their lengths.)
	if len(b)-i < 32 {
		return d.decodeFast(b, r)
	}
	src := (*[32]byte)(b[i : i+32])
	dst := &r.Values
	dst[0] = math.Float64frombits(binary.LittleEndian.Uint64(src[0:8]))
	dst[1] = math.Float64frombits(binary.LittleEndian.Uint64(src[8:16]))
	dst[2] = math.Float64frombits(binary.LittleEndian.Uint64(src[16:24]))
	dst[3] = math.Float64frombits(binary.LittleEndian.Uint64(src[24:32]))
	dst[4], dst[5], dst[6], dst[7] = 0, 0, 0, 0 // measures not configured
	i += 32
	// The last two varints, which end b, from the word that ends b with the bytes before each
	// shifted out. The zeros shifted in end a varint that would run past b, too late.
	rem := len(b) - i
	if rem > 8 {
		return d.decodeFast(b, r)
	}
	t := binary.LittleEndian.Uint64(b[len(b)-8:])
	x = t >> (uint(8*(8-rem)) & 63)
	v, n = x&0x7f, 1
	if x&0x80 != 0 {
		v, n = uvarintWord(x)
	}
	if uint64(n)<<56|v > p[2].lim {
		return d.decodeFast(b, r)
	}
	out[p[2].slot&3] = v
	rem -= n // where the third varint took the bytes the fourth needs, the fourth has the wrong length
	x = t >> (uint(8*(8-rem)) & 63)
	v, n = x&0x7f, 1
	if x&0x80 != 0 {
		v, n = uvarintWord(x)
	}
	if n != rem || uint64(n)<<56|v > p[3].lim {
		return d.decodeFast(b, r)
	}
	out[p[3].slot&3] = v
	r.Key, r.TimeMs, r.Status = zigzag64(out[slotKey]), zigzag64(out[slotTime]), int32(zigzag64(out[slotStatus]))
	return nil
}
