package avrodec

import (
	"encoding/binary"
	"math"
	"math/bits"

	"github.com/pipelined/pipelined/agg"
)

// Operations of the fast plan: the common steps, with runs of doubles and of strings fused.
const (
	fKey32 uint8 = iota
	fKey64
	fTime32
	fTime64
	fStatus32
	fStatus64
	fDoubles  // n doubles into measures idx..idx+n-1
	fNullable // union of null and double
	fSkip32
	fSkip64
	fSkipN   // n bytes
	fStrings // n strings or bytes
	fStep    // step k, the careful way
)

// fastStep is one operation of the fast plan.
type fastStep struct {
	op      uint8
	idx     uint8 // first measure index
	nullIdx uint8 // fNullable: the union index of null, zig-zag encoded
	n       int32 // fDoubles, fStrings: run length; fSkipN: bytes
	k       int32 // fStep: index into Decoder.steps
}

// fastPlan turns the careful plan into the fast one.
func fastPlan(steps []step) []fastStep {
	var fast []fastStep
	last := func() *fastStep {
		if len(fast) == 0 {
			return nil
		}
		return &fast[len(fast)-1]
	}
	for k, s := range steps {
		f := fastStep{op: fStep, k: int32(k)}
		switch s.op {
		case opKeyInt:
			f.op = fKey32
		case opKeyLong:
			f.op = fKey64
		case opTimeInt:
			f.op = fTime32
		case opTimeLong:
			f.op = fTime64
		case opStatusInt:
			f.op = fStatus32
		case opStatusLong:
			f.op = fStatus64
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
		case opSkipInt:
			f.op = fSkip32
		case opSkipLong:
			f.op = fSkip64
		case opSkipN:
			if l := last(); l != nil && l.op == fSkipN {
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

// uvarint reads an unsigned varint at b[i:], returning it and where it ends, or -1 when b ends
// inside it or it overflows 64 bits.
func uvarint(b []byte, i int) (uint64, int) {
	if i < len(b) && b[i] < 0x80 {
		return uint64(b[i]), i + 1
	}
	return uvarintLoop(b, i)
}

func uvarintLoop(b []byte, i int) (uint64, int) {
	// Up to 8 bytes at once: load 8 bytes, find the last byte of the varint, pack its 7-bit
	// groups. Near the end of b, load the last 8 bytes and shift the ones before i out: the
	// zeros shifted in look like a last byte, so the varint must end within b.
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
	stop := ^x & 0x8080808080808080
	if stop == 0 {
		return uvarintBytes(b, i) // 9 or 10 bytes
	}
	n := bits.TrailingZeros64(stop) + 1 // bits up to and including the last byte's top bit
	if n>>3 > rem {
		return 0, -1
	}
	x &= (1<<n - 1) & 0x7f7f7f7f7f7f7f7f
	x = (x&0x7f007f007f007f00)>>1 | x&0x007f007f007f007f
	x = (x&0x3fff00003fff0000)>>2 | x&0x00003fff00003fff
	x = (x&0x0fffffff00000000)>>4 | x&0x000000000fffffff
	return x, i + n>>3
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

// int32 reports whether the varint read from i to j is a valid Avro int: at most 5 bytes, 32 bits.
func isInt32(v uint64, i, j int) bool {
	return j > 0 && j-i <= 5 && v < 1<<32
}

func zigzag32(v uint64) int32 { return int32(uint32(v)>>1) ^ -int32(v&1) }
func zigzag64(v uint64) int64 { return int64(v>>1) ^ -int64(v&1) }

// Decode decodes the record b into r. On failure it returns an *Error (valid until the next
// Decode) and leaves r partly written.
//
// Every byte of b must belong to the record: bytes left over fail with ReasonTrailingBytes.
// Measures not configured (r.Values beyond the configured count) are set to zero, and so is
// r.Status when no status field is configured.
//
// Decode runs the fast plan, which only checks that all is well; at the first doubt it starts
// over the careful way, which finds and describes the problem.
func (d *Decoder) Decode(b []byte, r *agg.Reading) error {
	if len(b) == 0 || (d.maxBytes > 0 && len(b) > d.maxBytes) {
		return d.decodeCareful(b, r)
	}
	r.Status = 0
	i := 0
	for k := range d.fast {
		s := &d.fast[k]
		switch s.op {
		case fKey32:
			v, j := uvarint(b, i)
			if !isInt32(v, i, j) {
				return d.decodeCareful(b, r)
			}
			r.Key, i = int64(zigzag32(v)), j
		case fKey64:
			v, j := uvarint(b, i)
			if j < 0 {
				return d.decodeCareful(b, r)
			}
			r.Key, i = zigzag64(v), j
		case fTime32:
			v, j := uvarint(b, i)
			if !isInt32(v, i, j) {
				return d.decodeCareful(b, r)
			}
			r.TimeMs, i = int64(zigzag32(v)), j
		case fTime64:
			v, j := uvarint(b, i)
			if j < 0 {
				return d.decodeCareful(b, r)
			}
			r.TimeMs, i = zigzag64(v), j
		case fStatus32:
			v, j := uvarint(b, i)
			if !isInt32(v, i, j) {
				return d.decodeCareful(b, r)
			}
			r.Status, i = zigzag32(v), j
		case fStatus64:
			v, j := uvarint(b, i)
			z := zigzag64(v)
			if j < 0 || z != int64(int32(z)) {
				return d.decodeCareful(b, r)
			}
			r.Status, i = int32(z), j
		case fDoubles:
			n := int(s.n)
			if len(b)-i < 8*n {
				return d.decodeCareful(b, r)
			}
			vals := r.Values[s.idx:]
			for x := range n {
				vals[x] = math.Float64frombits(binary.LittleEndian.Uint64(b[i+8*x:]))
			}
			i += 8 * n
		case fNullable:
			if i >= len(b) {
				return d.decodeCareful(b, r)
			}
			switch u := b[i]; {
			case u == s.nullIdx:
				r.Values[s.idx] = math.NaN()
				i++
			case u <= 2 && u&1 == 0 && len(b)-i >= 9:
				r.Values[s.idx] = math.Float64frombits(binary.LittleEndian.Uint64(b[i+1:]))
				i += 9
			default:
				return d.decodeCareful(b, r)
			}
		case fSkip32:
			v, j := uvarint(b, i)
			if !isInt32(v, i, j) {
				return d.decodeCareful(b, r)
			}
			i = j
		case fSkip64:
			_, j := uvarint(b, i)
			if j < 0 {
				return d.decodeCareful(b, r)
			}
			i = j
		case fSkipN:
			if len(b)-i < int(s.n) {
				return d.decodeCareful(b, r)
			}
			i += int(s.n)
		case fStrings:
			for range s.n {
				v, j := uvarint(b, i)
				n := zigzag64(v)
				if j < 0 || n < 0 || n > int64(len(b)-j) {
					return d.decodeCareful(b, r)
				}
				i = j + int(n)
			}
		default: // fStep
			var ok bool
			if i, ok = d.step(b, i, int(s.k), r); !ok {
				return d.decodeCareful(b, r)
			}
		}
	}
	if i != len(b) {
		return d.decodeCareful(b, r)
	}
	clear(r.Values[d.measures:])
	return nil
}
