// Package avrodec decodes Avro binary records straight into agg.Reading, allocating nothing.
//
// A schema is compiled once into a flat plan, one step per writer field: read the field into a
// slot of the Reading, or skip it. Decode then walks the payload by hand, checking every length
// and index against the payload's bounds; any input either decodes or returns an *Error whose
// Reason is one of a small fixed set, usable as a metric label.
package avrodec

import (
	"encoding/binary"
	"math"

	"github.com/hamba/avro/v2"

	"github.com/pipelined/pipelined/agg"
)

// maxDepth bounds how deeply nested values are skipped, so a recursive schema cannot exhaust the
// stack on a hostile payload.
const maxDepth = 64

// Decoder decodes binary records of one writer schema into agg.Reading.
//
// A Decoder is not safe for concurrent use: it is used by one goroutine at a time (the pipeline
// makes one per partition worker), and the *Error it returns is reused by the next Decode.
type Decoder struct {
	fast      []fastStep
	steps     []step
	names     []string // writer field name of each step, for errors
	measures  int
	maxBytes  int
	fastMin   int // the payloads the fast plan may decode are fastMin to fastMin+fastSpan bytes long
	fastSpan  uint
	ref       refPlan // the reference's layout's plan, if refOK
	refOK     bool
	err       Error
	stepIndex int // the step being decoded, for errors
}

// New compiles schema, the writer schema of the payloads (as parsed by avro.Parse), into a
// Decoder that reads the fields f names. Payloads longer than maxBytes fail with
// ReasonOversized; maxBytes <= 0 means no limit.
//
// New fails, naming the field and the problem, when schema is not a record, a named field is
// missing or of a type the Reading cannot hold, a field is named twice, or there are more than
// agg.MaxMeasures measures.
func New(schema avro.Schema, f Fields, maxBytes int) (*Decoder, error) {
	steps, names, err := plan(schema, f)
	if err != nil {
		return nil, err
	}
	d := &Decoder{fast: fastPlan(steps), steps: steps, names: names, measures: len(f.Measures), maxBytes: maxBytes}
	d.fastMin, d.fastSpan = fastLens(d.fast, maxBytes)
	d.ref, d.refOK = planRef(d.fast)
	return d, nil
}

// decodeCareful is Decode done one field at a time with every check spelled out: the reference
// the fast path in Decode must agree with, and the path that builds its errors.
func (d *Decoder) decodeCareful(b []byte, r *agg.Reading) error {
	if len(b) == 0 {
		return d.fail(ReasonEmpty, "", b, 0, 0)
	}
	if d.maxBytes > 0 && len(b) > d.maxBytes {
		return d.fail(ReasonOversized, "", b, 0, int64(d.maxBytes))
	}
	r.Status = 0
	i := 0
	var ok bool
	for k := range d.steps {
		if i, ok = d.step(b, i, k, r); !ok {
			return &d.err
		}
	}
	if i != len(b) {
		d.stepIndex = -1
		return d.fail(ReasonTrailingBytes, "bytes after the record", b, i, int64(len(b)-i))
	}
	clear(r.Values[d.measures:])
	return nil
}

// step decodes field k at b[i:] into r, returning where the next field starts; when it returns
// false, d.err says why.
func (d *Decoder) step(b []byte, i, k int, r *agg.Reading) (int, bool) {
	s := &d.steps[k]
	d.stepIndex = k
	var ok bool
	switch s.op {
	case opKeyInt:
		var v int32
		v, i, ok = d.readInt(b, i, k)
		r.Key = int64(v)
	case opKeyLong:
		r.Key, i, ok = d.readLong(b, i, k)
	case opTimeInt:
		var v int32
		v, i, ok = d.readInt(b, i, k)
		r.TimeMs = int64(v)
	case opTimeLong:
		r.TimeMs, i, ok = d.readLong(b, i, k)
	case opStatusInt:
		r.Status, i, ok = d.readInt(b, i, k)
	case opStatusLong:
		start := i
		var v int64
		if v, i, ok = d.readLong(b, i, k); ok && v != int64(int32(v)) {
			d.fail(ReasonMalformed, "status out of int32 range", b, start, v)
			return i, false
		}
		r.Status = int32(v)
	case opStatusEnum:
		start := i
		var v int32
		if v, i, ok = d.readInt(b, i, k); ok && (v < 0 || v >= s.n) {
			d.fail(ReasonMalformed, "enum index", b, start, int64(v))
			return i, false
		}
		r.Status = v
	case opMeasureDouble:
		if len(b)-i < 8 {
			d.fail(ReasonTruncated, "", b, i, 0)
			return i, false
		}
		r.Values[s.idx] = math.Float64frombits(binary.LittleEndian.Uint64(b[i:]))
		return i + 8, true
	case opMeasureFloat:
		if len(b)-i < 4 {
			d.fail(ReasonTruncated, "", b, i, 0)
			return i, false
		}
		r.Values[s.idx] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[i:])))
		return i + 4, true
	case opMeasureInt:
		var v int32
		v, i, ok = d.readInt(b, i, k)
		r.Values[s.idx] = float64(v)
	case opMeasureLong:
		var v int64
		v, i, ok = d.readLong(b, i, k)
		r.Values[s.idx] = float64(v)
	case opMeasureNullable:
		return d.readNullable(b, i, k, s, r)
	case opSkipInt:
		_, i, ok = d.readInt(b, i, k)
	case opSkipLong:
		_, i, ok = d.readLong(b, i, k)
	case opSkipN:
		if len(b)-i < int(s.n) {
			d.fail(ReasonTruncated, "", b, i, 0)
			return i, false
		}
		return i + int(s.n), true
	default:
		return d.skipStep(b, i, s)
	}
	return i, ok
}

// fail fills the Decoder's Error; d.stepIndex names the field, -1 for none.
func (d *Decoder) fail(reason, detail string, b []byte, off int, v int64) *Error {
	field := ""
	if reason != ReasonEmpty && reason != ReasonOversized && d.stepIndex >= 0 && d.stepIndex < len(d.names) {
		field = d.names[d.stepIndex]
	}
	// Field by field: a composite literal is built on the stack and copied, and the copy's wide
	// loads stall on the narrow stores just made.
	e := &d.err
	e.Reason, e.Detail, e.Field = reason, detail, field
	e.Offset, e.Len, e.Value = off, len(b), v
	return e
}

// readInt reads a zig-zag varint int at b[i:] for step k.
func (d *Decoder) readInt(b []byte, i, k int) (int32, int, bool) {
	if i < len(b) && b[i] < 0x80 {
		v := uint32(b[i])
		return int32(v>>1) ^ -int32(v&1), i + 1, true
	}
	var v uint32
	for j, s := i, uint(0); j < len(b); j, s = j+1, s+7 {
		c := b[j]
		if s == 28 && c > 0x0f {
			d.stepIndex = k
			d.fail(ReasonMalformed, "int varint overflow, last byte", b, i, int64(c))
			return 0, i, false
		}
		v |= uint32(c&0x7f) << s
		if c < 0x80 {
			return int32(v>>1) ^ -int32(v&1), j + 1, true
		}
	}
	d.stepIndex = k
	d.fail(ReasonTruncated, "", b, i, 0)
	return 0, i, false
}

// readLong reads a zig-zag varint long at b[i:] for step k.
func (d *Decoder) readLong(b []byte, i, k int) (int64, int, bool) {
	if i < len(b) && b[i] < 0x80 {
		v := uint64(b[i])
		return int64(v>>1) ^ -int64(v&1), i + 1, true
	}
	var v uint64
	for j, s := i, uint(0); j < len(b); j, s = j+1, s+7 {
		c := b[j]
		if s == 63 && c > 1 {
			d.stepIndex = k
			d.fail(ReasonMalformed, "long varint overflow, last byte", b, i, int64(c))
			return 0, i, false
		}
		v |= uint64(c&0x7f) << s
		if c < 0x80 {
			return int64(v>>1) ^ -int64(v&1), j + 1, true
		}
	}
	d.stepIndex = k
	d.fail(ReasonTruncated, "", b, i, 0)
	return 0, i, false
}

// readNullable reads a union of null and a number into measure s.idx; null reads as NaN.
func (d *Decoder) readNullable(b []byte, i, k int, s *step, r *agg.Reading) (int, bool) {
	start := i
	u, i, ok := d.readLong(b, i, k)
	if !ok {
		return i, false
	}
	if u != 0 && u != 1 {
		d.stepIndex = k
		d.fail(ReasonMalformed, "union index", b, start, u)
		return i, false
	}
	if uint8(u) == s.nullIdx {
		r.Values[s.idx] = math.NaN()
		return i, true
	}
	switch s.kind {
	case kDouble:
		if len(b)-i < 8 {
			d.stepIndex = k
			d.fail(ReasonTruncated, "", b, i, 0)
			return i, false
		}
		r.Values[s.idx] = math.Float64frombits(binary.LittleEndian.Uint64(b[i:]))
		return i + 8, true
	case kFloat:
		if len(b)-i < 4 {
			d.stepIndex = k
			d.fail(ReasonTruncated, "", b, i, 0)
			return i, false
		}
		r.Values[s.idx] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[i:])))
		return i + 4, true
	case kInt:
		v, i, ok := d.readInt(b, i, k)
		r.Values[s.idx] = float64(v)
		return i, ok
	default: // kLong
		v, i, ok := d.readLong(b, i, k)
		r.Values[s.idx] = float64(v)
		return i, ok
	}
}

// skipStep skips the field of the less common skip steps; d.stepIndex is set.
func (d *Decoder) skipStep(b []byte, i int, s *step) (int, bool) {
	k := d.stepIndex
	switch s.op {
	case opSkipBool:
		return d.skipBool(b, i)
	case opSkipBytes:
		return d.skipBytes(b, i, k)
	case opSkipEnum:
		return d.skipEnum(b, i, k, int(s.n))
	default: // opSkipNode
		return d.skip(b, i, s.node, 0)
	}
}

func (d *Decoder) skipBool(b []byte, i int) (int, bool) {
	if i >= len(b) {
		d.fail(ReasonTruncated, "", b, i, 0)
		return i, false
	}
	if b[i] > 1 {
		d.fail(ReasonMalformed, "boolean byte", b, i, int64(b[i]))
		return i, false
	}
	return i + 1, true
}

func (d *Decoder) skipBytes(b []byte, i, k int) (int, bool) {
	start := i
	n, i, ok := d.readLong(b, i, k)
	if !ok {
		return i, false
	}
	if n < 0 {
		d.fail(ReasonMalformed, "negative length", b, start, n)
		return i, false
	}
	if n > int64(len(b)-i) {
		d.fail(ReasonTruncated, "length", b, start, n)
		return i, false
	}
	return i + int(n), true
}

func (d *Decoder) skipEnum(b []byte, i, k, symbols int) (int, bool) {
	start := i
	v, i, ok := d.readInt(b, i, k)
	if !ok {
		return i, false
	}
	if v < 0 || int(v) >= symbols {
		d.fail(ReasonMalformed, "enum index", b, start, int64(v))
		return i, false
	}
	return i, true
}

// skip skips one value of type nd at b[i:].
func (d *Decoder) skip(b []byte, i int, nd *node, depth int) (int, bool) {
	k := d.stepIndex
	if nd.size >= 0 {
		if nd.size > len(b)-i {
			d.fail(ReasonTruncated, "", b, i, 0)
			return i, false
		}
		if opaque(nd) {
			return i + nd.size, true
		}
	}
	if depth >= maxDepth {
		d.fail(ReasonMalformed, "nesting deeper than", b, i, maxDepth)
		return i, false
	}
	var ok bool
	switch nd.kind {
	case kBool:
		return d.skipBool(b, i)
	case kInt:
		_, i, ok = d.readInt(b, i, k)
		return i, ok
	case kLong:
		_, i, ok = d.readLong(b, i, k)
		return i, ok
	case kBytes:
		return d.skipBytes(b, i, k)
	case kEnum:
		return d.skipEnum(b, i, k, nd.n)
	case kRecord:
		for _, sub := range nd.subs {
			if i, ok = d.skip(b, i, sub, depth+1); !ok {
				return i, false
			}
		}
		return i, true
	case kUnion:
		start := i
		var u int64
		if u, i, ok = d.readLong(b, i, k); !ok {
			return i, false
		}
		if u < 0 || u >= int64(len(nd.subs)) {
			d.fail(ReasonMalformed, "union index", b, start, u)
			return i, false
		}
		return d.skip(b, i, nd.subs[u], depth+1)
	case kArray, kMap:
		return d.skipBlocks(b, i, nd, depth)
	}
	return i, true
}

// skipBlocks skips the blocks of an array or map. A block with a negative count carries its
// size in bytes; its items are still walked, and must fill exactly that size.
func (d *Decoder) skipBlocks(b []byte, i int, nd *node, depth int) (int, bool) {
	k := d.stepIndex
	for {
		start := i
		n, i2, ok := d.readLong(b, i, k)
		if !ok {
			return i2, false
		}
		i = i2
		if n == 0 {
			return i, true
		}
		end, declared := -1, int64(0)
		if n < 0 {
			if n == math.MinInt64 {
				d.fail(ReasonMalformed, "block count", b, start, n)
				return i, false
			}
			n = -n
			sizeAt := i
			var size int64
			if size, i, ok = d.readLong(b, i, k); !ok {
				return i, false
			}
			if size < 0 {
				d.fail(ReasonMalformed, "negative block size", b, sizeAt, size)
				return i, false
			}
			if size > int64(len(b)-i) {
				d.fail(ReasonTruncated, "block size", b, sizeAt, size)
				return i, false
			}
			end, declared = i+int(size), size
		}
		// Every item of a map, and of an array of variable-size items, takes at least one
		// byte: a count beyond the bytes left cannot be right.
		if nd.kind == kMap || nd.elem.size < 0 {
			if n > int64(len(b)-i) {
				d.fail(ReasonTruncated, "item count", b, start, n)
				return i, false
			}
		} else if nd.elem.size > 0 && n > int64((len(b)-i)/nd.elem.size) {
			d.fail(ReasonTruncated, "item count", b, start, n)
			return i, false
		}
		switch {
		case nd.kind == kArray && opaque(nd.elem):
			i += int(n) * nd.elem.size
		default:
			for range n {
				if nd.kind == kMap {
					if i, ok = d.skipBytes(b, i, k); !ok {
						return i, false
					}
				}
				if i, ok = d.skip(b, i, nd.elem, depth+1); !ok {
					return i, false
				}
			}
		}
		if end >= 0 && i != end {
			d.fail(ReasonMalformed, "block size does not match its items, size", b, start, declared)
			return i, false
		}
	}
}

// opaque reports whether values of nd are a constant number of bytes with nothing to check in
// them, so that skipping is adding their size.
func opaque(nd *node) bool {
	switch nd.kind {
	case kNull, kFloat, kDouble, kFixed:
		return true
	}
	// A record of constant size zero holds only nulls and such records.
	return nd.size == 0
}
