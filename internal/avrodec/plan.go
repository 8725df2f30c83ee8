package avrodec

import (
	"fmt"

	"github.com/hamba/avro/v2"

	"github.com/pipelined/pipelined/agg"
)

// Operations of the flat per-field plan. The read operations store into agg.Reading; the skip
// operations only move past the field, checking it is well formed.
const (
	opKeyInt uint8 = iota
	opKeyLong
	opTimeInt
	opTimeLong
	opStatusInt
	opStatusLong
	opStatusEnum
	opMeasureDouble
	opMeasureFloat
	opMeasureInt
	opMeasureLong
	opMeasureNullable // union of null and a number: kind says which number
	opSkipInt
	opSkipLong
	opSkipN // null, float, double, fixed: n bytes
	opSkipBool
	opSkipBytes // string or bytes
	opSkipEnum
	opSkipNode // anything else, walked through node
)

// step is what Decode does with one writer field.
type step struct {
	op      uint8
	idx     uint8 // measure index
	kind    uint8 // for opMeasureNullable: the number's node kind
	nullIdx uint8 // for opMeasureNullable: the union index of null (0 or 1)
	n       int32 // opSkipN: byte count; opStatusEnum, opSkipEnum: symbol count
	node    *node // opSkipNode
}

// Kinds of node, the compiled form of any Avro type for skipping.
const (
	kNull uint8 = iota
	kBool
	kInt
	kLong
	kFloat
	kDouble
	kBytes // bytes and string
	kFixed
	kEnum
	kArray
	kMap
	kRecord
	kUnion
)

// node is an Avro type compiled for skipping. Named types are compiled once, so recursive types
// become cyclic graphs.
type node struct {
	kind uint8
	n    int     // kFixed: size; kEnum: symbol count
	size int     // encoded size when every value has the same one, else -1
	elem *node   // kArray: items; kMap: values
	subs []*node // kRecord: fields; kUnion: branches
}

// compiler turns schemas into nodes, reusing the node of a named type already seen.
type compiler struct {
	named map[string]*node
}

func resolve(s avro.Schema) avro.Schema {
	if ref, ok := s.(*avro.RefSchema); ok {
		return ref.Schema()
	}
	return s
}

func (c *compiler) compile(s avro.Schema) (*node, error) {
	if ref, ok := s.(*avro.RefSchema); ok {
		if nd := c.named[ref.Schema().FullName()]; nd != nil {
			return nd, nil
		}
		s = ref.Schema()
	}
	switch s := s.(type) {
	case *avro.NullSchema:
		return &node{kind: kNull, size: 0}, nil
	case *avro.PrimitiveSchema:
		switch s.Type() {
		case avro.Null:
			return &node{kind: kNull, size: 0}, nil
		case avro.Boolean:
			return &node{kind: kBool, size: 1}, nil
		case avro.Int:
			return &node{kind: kInt, size: -1}, nil
		case avro.Long:
			return &node{kind: kLong, size: -1}, nil
		case avro.Float:
			return &node{kind: kFloat, size: 4}, nil
		case avro.Double:
			return &node{kind: kDouble, size: 8}, nil
		case avro.String, avro.Bytes:
			return &node{kind: kBytes, size: -1}, nil
		}
	case *avro.FixedSchema:
		nd := &node{kind: kFixed, n: s.Size(), size: s.Size()}
		c.named[s.FullName()] = nd
		return nd, nil
	case *avro.EnumSchema:
		nd := &node{kind: kEnum, n: len(s.Symbols()), size: -1}
		c.named[s.FullName()] = nd
		return nd, nil
	case *avro.ArraySchema:
		elem, err := c.compile(s.Items())
		if err != nil {
			return nil, err
		}
		return &node{kind: kArray, size: -1, elem: elem}, nil
	case *avro.MapSchema:
		elem, err := c.compile(s.Values())
		if err != nil {
			return nil, err
		}
		return &node{kind: kMap, size: -1, elem: elem}, nil
	case *avro.UnionSchema:
		nd := &node{kind: kUnion, size: -1}
		for _, t := range s.Types() {
			sub, err := c.compile(t)
			if err != nil {
				return nil, err
			}
			nd.subs = append(nd.subs, sub)
		}
		return nd, nil
	case *avro.RecordSchema:
		// Registered before its fields so that a recursive reference finds it; while the fields
		// compile its size is -1, which is right: a recursive record has no constant size.
		nd := &node{kind: kRecord, size: -1}
		c.named[s.FullName()] = nd
		size := 0
		for _, f := range s.Fields() {
			sub, err := c.compile(f.Type())
			if err != nil {
				return nil, fmt.Errorf("field %q: %w", f.Name(), err)
			}
			nd.subs = append(nd.subs, sub)
			if size >= 0 && sub.size >= 0 {
				size += sub.size
			} else {
				size = -1
			}
		}
		nd.size = size
		return nd, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrFieldType, s.Type())
}

// Fields names the record fields the pipeline reads.
type Fields struct {
	Key      string   // device id: int or long. Required.
	Time     string   // event time in epoch milliseconds: long (plain or timestamp-millis) or int. Required.
	Status   string   // int, long or enum (its index). Optional: empty leaves Reading.Status 0.
	Measures []string // double, float, int, long, or a union of null and one of those (null reads as NaN); at most agg.MaxMeasures.
}

// skipStep returns the step that skips a field compiled to nd.
func skipStep(nd *node) step {
	switch nd.kind {
	case kInt:
		return step{op: opSkipInt}
	case kLong:
		return step{op: opSkipLong}
	case kNull, kFloat, kDouble, kFixed:
		return step{op: opSkipN, n: int32(nd.size)}
	case kBool:
		return step{op: opSkipBool}
	case kBytes:
		return step{op: opSkipBytes}
	case kEnum:
		return step{op: opSkipEnum, n: int32(nd.n)}
	}
	if nd.size == 0 {
		return step{op: opSkipN}
	}
	return step{op: opSkipNode, node: nd}
}

// role is what the configuration asks of a writer field.
type role struct {
	what string // "key", "time", "status", "measure"
	idx  int    // measure index
}

func primitive(s avro.Schema) (avro.Type, avro.LogicalType) {
	p, ok := s.(*avro.PrimitiveSchema)
	if !ok {
		return s.Type(), ""
	}
	if l := p.Logical(); l != nil {
		return p.Type(), l.Type()
	}
	return p.Type(), ""
}

// readStep returns the step that reads a field of type s in role r.
func readStep(s avro.Schema, r role) (step, error) {
	s = resolve(s)
	t, logical := primitive(s)
	switch r.what {
	case "key":
		switch t {
		case avro.Int:
			return step{op: opKeyInt}, nil
		case avro.Long:
			return step{op: opKeyLong}, nil
		}
		return step{}, fmt.Errorf("%w: %s, want int or long", ErrFieldType, s)
	case "time":
		switch {
		case t == avro.Long && (logical == "" || logical == avro.TimestampMillis || logical == avro.LocalTimestampMillis):
			return step{op: opTimeLong}, nil
		case t == avro.Int && logical == "":
			return step{op: opTimeInt}, nil
		}
		return step{}, fmt.Errorf("%w: %s, want long (epoch milliseconds) or int", ErrFieldType, s)
	case "status":
		switch t {
		case avro.Int:
			return step{op: opStatusInt}, nil
		case avro.Long:
			return step{op: opStatusLong}, nil
		case avro.Enum:
			return step{op: opStatusEnum, n: int32(len(s.(*avro.EnumSchema).Symbols()))}, nil
		}
		return step{}, fmt.Errorf("%w: %s, want int, long or enum", ErrFieldType, s)
	}
	idx := uint8(r.idx)
	switch t {
	case avro.Double:
		return step{op: opMeasureDouble, idx: idx}, nil
	case avro.Float:
		return step{op: opMeasureFloat, idx: idx}, nil
	case avro.Int:
		return step{op: opMeasureInt, idx: idx}, nil
	case avro.Long:
		return step{op: opMeasureLong, idx: idx}, nil
	case avro.Union:
		types := s.(*avro.UnionSchema).Types()
		if len(types) == 2 {
			for nullIdx := range 2 {
				if types[nullIdx].Type() != avro.Null {
					continue
				}
				var kind uint8
				switch t, _ := primitive(resolve(types[1-nullIdx])); t {
				case avro.Double:
					kind = kDouble
				case avro.Float:
					kind = kFloat
				case avro.Int:
					kind = kInt
				case avro.Long:
					kind = kLong
				default:
					continue
				}
				return step{op: opMeasureNullable, idx: idx, kind: kind, nullIdx: uint8(nullIdx)}, nil
			}
		}
	}
	return step{}, fmt.Errorf("%w: %s, want double, float, int, long or a union of null and one of those", ErrFieldType, s)
}

// plan compiles schema for f into one step per writer field.
func plan(schema avro.Schema, f Fields) (steps []step, names []string, err error) {
	rec, ok := schema.(*avro.RecordSchema)
	if !ok {
		return nil, nil, fmt.Errorf("avrodec: %w: %s", ErrNotRecord, schema.Type())
	}
	if len(f.Measures) > agg.MaxMeasures {
		return nil, nil, fmt.Errorf("avrodec: %w: %d, max %d", ErrTooManyMeasures, len(f.Measures), agg.MaxMeasures)
	}
	roles := make(map[string]role)
	add := func(what, name string, idx int) error {
		if name == "" {
			return fmt.Errorf("avrodec: %s field: %w: empty name", what, ErrMissingField)
		}
		if prev, ok := roles[name]; ok {
			return fmt.Errorf("avrodec: %s field %q: %w (already the %s field)", what, name, ErrDuplicateField, prev.what)
		}
		roles[name] = role{what: what, idx: idx}
		return nil
	}
	if err := add("key", f.Key, 0); err != nil {
		return nil, nil, err
	}
	if err := add("time", f.Time, 0); err != nil {
		return nil, nil, err
	}
	if f.Status != "" {
		if err := add("status", f.Status, 0); err != nil {
			return nil, nil, err
		}
	}
	for i, m := range f.Measures {
		if err := add("measure", m, i); err != nil {
			return nil, nil, err
		}
	}

	// The whole record compiles to a node too, for fields that refer back to it.
	c := compiler{named: make(map[string]*node)}
	top, err := c.compile(rec)
	if err != nil {
		return nil, nil, fmt.Errorf("avrodec: %w", err)
	}
	found := 0
	for i, fld := range rec.Fields() {
		st := skipStep(top.subs[i])
		if r, ok := roles[fld.Name()]; ok {
			found++
			if st, err = readStep(fld.Type(), r); err != nil {
				return nil, nil, fmt.Errorf("avrodec: %s field %q: %w", r.what, fld.Name(), err)
			}
		}
		steps = append(steps, st)
		names = append(names, fld.Name())
	}
	if found != len(roles) {
		have := make(map[string]bool, len(rec.Fields()))
		for _, fld := range rec.Fields() {
			have[fld.Name()] = true
		}
		// Report the first missing field in configuration order.
		for _, name := range append([]string{f.Key, f.Time, f.Status}, f.Measures...) {
			if name != "" && !have[name] {
				return nil, nil, fmt.Errorf("avrodec: %s field %q: %w %s", roles[name].what, name, ErrMissingField, rec.FullName())
			}
		}
	}
	return steps, names, nil
}
