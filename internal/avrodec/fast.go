package avrodec

import (
	"encoding/binary"
	"math"
	"math/bits"

	"github.com/pipelined/pipelined/agg"
)

// Operations of the fast plan: the common steps, with runs of doubles and of strings fused.
const (
	fVarint   uint8 = iota // int or long (key, time, status or skipped) into slot idx
	fDoubles               // n doubles into measures idx..idx+n-1
	fStrings               // n strings or bytes
	fEnum                  // enum index, of n symbols, into slot idx
	fNullable              // union of null and double
	fSkipN                 // n bytes
	fStep                  // step n, the careful way
)

// Slots where Decode keeps the varints it reads, zig-zag encoded, until the record is whole:
// one store per field whatever its role, and no branch on it.
const (
	slotKey = iota
	slotTime
	slotStatus
	slotNone // a skipped field
)

// fastStep is one operation of the fast plan.
type fastStep struct {
	op      uint8
	idx     uint8  // fVarint, fEnum: slot; fDoubles, fNullable: first measure index
	nullIdx uint8  // fNullable: the union index of null, zig-zag encoded
	maxLen  uint8  // fVarint: the most bytes the varint may take
	n       int32  // fDoubles, fStrings: run length; fSkipN: bytes; fEnum: symbols; fStep: index into Decoder.steps
	maxV    uint64 // fVarint: the largest varint allowed, before zig-zag decoding
}

// Limits of fVarint steps. An Avro int is at most 5 bytes; the zig-zag encodings of the int32
// range are the varints below 1<<32.
const (
	maxInt32Len = 5
	maxInt64Len = 10
	maxInt32V   = 1<<32 - 1
	maxInt64V   = math.MaxUint64
)

// fastPlan turns the careful plan into the fast one.
func fastPlan(steps []step) []fastStep {
	var fast []fastStep
	last := func() *fastStep {
		if len(fast) == 0 {
			return nil
		}
		return &fast[len(fast)-1]
	}
	varint := func(slot, maxLen uint8, maxV uint64) fastStep {
		return fastStep{op: fVarint, idx: slot, maxLen: maxLen, maxV: maxV}
	}
	for k, s := range steps {
		f := fastStep{op: fStep, n: int32(k)}
		switch s.op {
		case opKeyInt:
			f = varint(slotKey, maxInt32Len, maxInt32V)
		case opKeyLong:
			f = varint(slotKey, maxInt64Len, maxInt64V)
		case opTimeInt:
			f = varint(slotTime, maxInt32Len, maxInt32V)
		case opTimeLong:
			f = varint(slotTime, maxInt64Len, maxInt64V)
		case opStatusInt:
			f = varint(slotStatus, maxInt32Len, maxInt32V)
		case opStatusLong:
			f = varint(slotStatus, maxInt64Len, maxInt32V) // a long, but within the int32 range
		case opSkipInt:
			f = varint(slotNone, maxInt32Len, maxInt32V)
		case opSkipLong:
			f = varint(slotNone, maxInt64Len, maxInt64V)
		case opStatusEnum:
			f = fastStep{op: fEnum, idx: slotStatus, n: s.n}
		case opSkipEnum:
			f = fastStep{op: fEnum, idx: slotNone, n: s.n}
		case opMeasureDouble:
			if l := last(); l != nil && l.op == fDoubles && int(l.idx)+int(l.n) == int(s.idx) {
				l.n++
				continue
			}
			f = fastStep{op: fDoubles, idx: s.idx, n: 1}
		case opMeasureNullable:
			if s.kind == kDouble {
				f = fastStep{op: fNullable, idx: s.idx, nullIdx: s.nullIdx << 1}
			}
		case opSkipN:
			if l := last(); l != nil && l.op == fSkipN && l.n <= math.MaxInt32-s.n {
				l.n += s.n
				continue
			}
			f = fastStep{op: fSkipN, n: s.n}
		case opSkipBytes:
			if l := last(); l != nil && l.op == fStrings {
				l.n++
				continue
			}
			f = fastStep{op: fStrings, n: 1}
		}
		fast = append(fast, f)
	}
	return fast
}

// fastLens returns the payload lengths worth trying the fast plan on, as Decoder.fastMin and
// fastSpan: from the fewest bytes a record can take (and at least one) to maxBytes.
// Shorter payloads go straight to the careful way, which is where they end up anyway.
func fastLens(fast []fastStep, maxBytes int) (int, uint) {
	lo := 0
	for _, s := range fast {
		switch s.op {
		case fVarint, fEnum, fNullable:
			lo++
		case fDoubles:
			lo += 8 * int(s.n)
		case fStrings, fSkipN:
			lo += int(s.n)
		}
	}
	lo = max(lo, 1)
	hi := math.MaxInt
	if maxBytes > 0 {
		hi = maxBytes
	}
	if hi < lo {
		return math.MaxInt, 0 // no payload
	}
	return lo, uint(hi - lo)
}

// uvarint reads an unsigned varint at b[i:], returning it and where it ends, or -1 when b ends
// inside it or it overflows 64 bits.
func uvarint(b []byte, i int) (uint64, int) {
	if i < len(b) && b[i] < 0x80 {
		return uint64(b[i]), i + 1
	}
	return uvarintLoop(b, i)
}

func uvarintLoop(b []byte, i int) (uint64, int) {
	// Up to 8 bytes at once. Near the end of b, load the last 8 bytes and shift the ones before
	// i out: the zeros shifted in look like a last byte, so the varint must end within b.
	var x uint64
	rem := len(b) - i
	switch {
	case rem >= 8:
		x = binary.LittleEndian.Uint64(b[i:])
	case len(b) >= 8 && rem > 0:
		x = binary.LittleEndian.Uint64(b[len(b)-8:]) >> (8 * (8 - rem))
	default:
		return uvarintBytes(b, i)
	}
	v, n := uvarintWord(x)
	switch {
	case n > 8:
		return uvarintBytes(b, i) // 9 or 10 bytes
	case n > rem:
		return 0, -1
	}
	return v, i + n
}

// uvarintWord decodes the varint at the start of x, the next 8 bytes in little-endian order,
// returning it and its length, or a length of 9 (and no value) when it does not end within x.
// No branch: 9 is what the arithmetic gives.
func uvarintWord(x uint64) (uint64, int) {
	// Find the last byte of the varint, then pack its 7-bit groups.
	stop := ^x & 0x8080808080808080
	x &= (stop ^ (stop - 1)) & 0x7f7f7f7f7f7f7f7f // up to the last byte's top bit; all, if none
	x = (x&0x7f007f007f007f00)>>1 | x&0x007f007f007f007f
	x = (x&0x3fff00003fff0000)>>2 | x&0x00003fff00003fff
	x = (x&0x0fffffff00000000)>>4 | x&0x000000000fffffff
	return x, bits.TrailingZeros64(stop)>>3 + 1 // 64>>3 + 1 when stop is 0
}

// uvarintBytes is uvarint a byte at a time.
func uvarintBytes(b []byte, i int) (uint64, int) {
	var v uint64
	for j, s := i, uint(0); j < len(b) && s < 70; j, s = j+1, s+7 {
		c := b[j]
		v |= uint64(c&0x7f) << s
		if c < 0x80 {
			if s == 63 && c > 1 {
				return 0, -1
			}
			return v, j + 1
		}
	}
	return 0, -1
}

func zigzag64(v uint64) int64 { return int64(v>>1) ^ -int64(v&1) }

// Decode decodes the record b into r. On failure it returns an *Error (valid until the next
// Decode) and leaves r partly written.
//
// Every byte of b must belong to the record: bytes left over fail with ReasonTrailingBytes.
// Measures not configured (r.Values beyond the configured count) are set to zero, and so is
// r.Status when no status field is configured.
//
// Decode runs the fast plan, which only checks that all is well; at the first doubt it starts
// over the careful way, which finds and describes the problem. Records of the reference's
// layout go to decodeRef first (ref.go), and to the fast plan where it gives up.
func (d *Decoder) Decode(b []byte, r *agg.Reading) error {
	if uint(len(b)-d.fastMin) > d.fastSpan {
		return d.decodeCareful(b, r)
	}
	if d.refOK {
		return d.decodeRef(b, r)
	}
	return d.decodeFast(b, r)
}

// DecodeBatch decodes bs[k] into rs[k] as Decode does, for every k, and sets ok[k] to whether
// it did; rs and ok must be at least as long as bs. It keeps no error: Decode a payload that
// failed again for its *Error. Payloads of the reference's layout are decoded a run at a time
// in assembly on amd64 (decodeRefBatch), without a call per payload.
func (d *Decoder) DecodeBatch(bs [][]byte, rs []agg.Reading, ok []bool) {
	rs, ok = rs[:len(bs)], ok[:len(bs)]
	for k := 0; k < len(bs); k++ {
		if d.refOK {
			if k += decodeRefBatch(bs[k:], &rs[k], &ok[k], &d.ref, d.fastMin, d.fastSpan); k == len(bs) {
				return
			}
		}
		ok[k] = d.Decode(bs[k], &rs[k]) == nil
	}
}

// decodeFast is Decode with the fast plan.
func (d *Decoder) decodeFast(b []byte, r *agg.Reading) error {
	r.Values = [agg.MaxMeasures]float64{} // four stores, where clearing the unread tail is a call
	var out [4]uint64                     // by slot
	fast := d.fast
	i := 0
	for k := range fast {
		s := &fast[k]
		// The cases below leave what they cannot do quickly to slowStep, and give up on what
		// is wrong. Only the call to slowStep returns into the loop: with calls in several
		// places, the compiler spills the loop's variables on every step.
		//
		// A case may leave i past the end of b, where the record cannot be whole: i only grows,
		// every step gives up on a payload it finds ended, and so does the check after the loop.
		if s.op == fVarint {
			// One byte, the commonest length, is one load and one compare: no word to build,
			// and near the end of b no shift. Below, the first byte goes on (or i is past the
			// end of b, and so will be).
			if uint(i) < uint(len(b)) && b[i] < 0x80 {
				out[s.idx&3] = uint64(b[i])
				i++
				continue
			}
			// Near the end of b, the last 8 bytes with those before i shifted out: the zeros
			// shifted in end a varint that runs past the end of b, and i passes len(b).
			var x uint64
			switch rem := len(b) - i; {
			case rem >= 8:
				x = binary.LittleEndian.Uint64(b[i : i+8]) // not b[i:], which masks its pointer
			case rem > 0 && len(b) >= 8:
				x = binary.LittleEndian.Uint64(b[len(b)-8:]) >> (uint(8*(8-rem)) & 63)
			default:
				goto slow
			}
			// The common lengths are branches rather than arithmetic: predicted, they let the
			// next field's loads start before this varint is decoded (uvarintWord's length
			// waits for the load). Up to 3 bytes, a varint fits any int. 6 bytes, a long's
			// (epoch milliseconds from mid-1970 to 2039), is worth its case too: uvarintWord
			// costs twice the instructions. It must still check maxV, for a status long.
			var v uint64
			switch {
			case x&0x8000 == 0:
				v = x&0x7f | x>>1&0x3f80
				i += 2
			case x&0x800000 == 0:
				v = x&0x7f | x>>1&0x3f80 | x>>2&0x1fc000
				i += 3
			case x&0x808080808080 == 0x008080808080 && s.maxLen > maxInt32Len:
				v = x&0x7f | x>>1&0x3f80 | x>>2&0x1fc000 | x>>3&0xfe00000 | x>>4&0x7f0000000 | x>>5&0x3f800000000
				if v > s.maxV {
					return d.decodeCareful(b, r)
				}
				i += 6
			default:
				var n int
				if v, n = uvarintWord(x); n > 8 {
					goto slow // 9 bytes or more
				}
				if n > int(s.maxLen) || v > s.maxV {
					return d.decodeCareful(b, r)
				}
				i += n
			}
			out[s.idx&3] = v
			continue
		}
		switch s.op {
		case fDoubles:
			n, x := int(s.n), int(s.idx)
			if 8*n > len(b)-i || i < 0 {
				return d.decodeCareful(b, r)
			}
			// Four at a time through array pointers: one bounds check for the four.
			for ; n >= 4; n, x, i = n-4, x+4, i+32 {
				src := (*[32]byte)(b[i : i+32])
				dst := (*[4]float64)(r.Values[x : x+4])
				dst[0] = math.Float64frombits(binary.LittleEndian.Uint64(src[0:8]))
				dst[1] = math.Float64frombits(binary.LittleEndian.Uint64(src[8:16]))
				dst[2] = math.Float64frombits(binary.LittleEndian.Uint64(src[16:24]))
				dst[3] = math.Float64frombits(binary.LittleEndian.Uint64(src[24:32]))
			}
			for ; n > 0; n, x, i = n-1, x+1, i+8 {
				r.Values[x&7] = math.Float64frombits(binary.LittleEndian.Uint64(b[i : i+8]))
			}
			continue
		case fStrings:
			j := i
			for n := s.n; n > 0; n-- { // counting down: no compare with s.n
				if uint(j) >= uint(len(b)) {
					return d.decodeCareful(b, r)
				}
				h := uint(b[j])
				if h&0x81 != 0 { // a longer length, or a negative one
					goto slow
				}
				j += int(h+2) >> 1 // the length byte and the h/2 bytes after it
			}
			i = j
			continue
		case fNullable:
			if i >= len(b) || i < 0 {
				return d.decodeCareful(b, r)
			}
			switch u := b[i]; {
			case u == s.nullIdx:
				r.Values[s.idx&7] = math.NaN()
				i++
			case u <= 2 && u&1 == 0 && len(b)-i >= 9:
				r.Values[s.idx&7] = math.Float64frombits(binary.LittleEndian.Uint64(b[i+1 : i+9]))
				i += 9
			default:
				return d.decodeCareful(b, r)
			}
			continue
		case fSkipN:
			if len(b)-i < int(s.n) {
				return d.decodeCareful(b, r)
			}
			i += int(s.n)
			continue
		}
	slow:
		var ok bool
		if i, ok = d.slowStep(b, i, k, r, &out); !ok {
			return d.decodeCareful(b, r)
		}
	}
	if i != len(b) {
		return d.decodeCareful(b, r)
	}
	r.Key, r.TimeMs, r.Status = zigzag64(out[slotKey]), zigzag64(out[slotTime]), int32(zigzag64(out[slotStatus]))
	return nil
}

// slowStep does step k of the fast plan when Decode's loop leaves it: an fEnum or fStep, or an
// fVarint or fStrings too long or too near the end of b for the loop. It reports false where
// Decode should start over the careful way.
func (d *Decoder) slowStep(b []byte, i, k int, r *agg.Reading, out *[4]uint64) (int, bool) {
	s := &d.fast[k]
	switch s.op {
	case fVarint:
		v, j := uvarint(b, i)
		if j < 0 || j-i > int(s.maxLen) || v > s.maxV {
			return i, false
		}
		out[s.idx&3] = v
		return j, true
	case fStrings:
		for range s.n {
			v, j := uvarint(b, i)
			n := zigzag64(v)
			if j < 0 || n < 0 || n > int64(len(b)-j) {
				return i, false
			}
			i = j + int(n)
		}
		return i, true
	case fEnum:
		v, j := uvarint(b, i)
		if j < 0 || j-i > maxInt32Len || v&1 != 0 || v>>1 >= uint64(s.n) {
			return i, false
		}
		out[s.idx&3] = v
		return j, true
	}
	return d.step(b, i, int(s.n), r)
}
