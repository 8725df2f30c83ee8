package chlocal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Native blocks are read without decoding their columns: a walker follows
// each column's serialization to find where it ends and copies its bytes.
// Every length read from the wire is checked against what arrived and a
// budget, so garbage cannot make the server allocate more than it received.

// Limits on one block; ClickHouse has no such limits, these keep a bad
// client from exhausting memory.
const (
	maxBlockBytes   = 1 << 30 // data bytes in one block
	maxBlockRows    = 100_000_000
	maxBlockColumns = 100_000
	maxNameLen      = 1 << 20 // column name or type
)

// errBlockTooLarge is returned when a block goes over a limit.
var errBlockTooLarge = errors.New("block too large")

// column of a native block: Data is its serialized values, exactly as the
// Native format writes them.
type column struct {
	Name, Type string
	Data       []byte
}

// block is a native block. Over the protocol a block starts with a
// BlockInfo, which the server reads past and writes as ClickHouse does.
type block struct {
	Rows int
	Cols []column
}

// byteReader is what the block reader reads from.
type byteReader interface {
	io.Reader
	io.ByteReader
}

// blockReader reads native blocks.
type blockReader struct {
	r    byteReader
	buf  []byte // column data of the current block
	left int    // bytes the current block may still take
}

func (br *blockReader) uvarint() (uint64, error) {
	v, err := binary.ReadUvarint(br.r)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return v, err
}

func (br *blockReader) str(limit int) (string, error) {
	n, err := br.uvarint()
	if err != nil {
		return "", err
	}
	if n > uint64(limit) {
		return "", fmt.Errorf("string of %d bytes: %w", n, errBlockTooLarge)
	}
	start := len(br.buf)
	if err := br.copyN(n); err != nil {
		return "", err
	}
	s := string(br.buf[start:])
	br.buf = br.buf[:start]
	return s, nil
}

// copyN appends the next n bytes to buf, growing it as the bytes arrive: at least doubling it
// when it is full, so that a block of megabytes costs a few copies, not dozens.
func (br *blockReader) copyN(n uint64) error {
	if n > uint64(br.left) {
		return fmt.Errorf("%d more bytes: %w", n, errBlockTooLarge)
	}
	br.left -= int(n)
	for n > 0 {
		chunk := int(min(n, 1<<20))
		start := len(br.buf)
		if cap(br.buf)-start < chunk {
			br.buf = slices.Grow(br.buf, max(chunk, cap(br.buf)))
		}
		br.buf = br.buf[:start+chunk]
		if _, err := io.ReadFull(br.r, br.buf[start:]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		n -= uint64(chunk)
	}
	return nil
}

// lastUint64 appends n little-endian UInt64 values to buf and returns the last.
func (br *blockReader) lastUint64(n uint64) (uint64, error) {
	if n == 0 {
		return 0, nil
	}
	if n > uint64(br.left)/8 {
		return 0, fmt.Errorf("%d offsets: %w", n, errBlockTooLarge)
	}
	if err := br.copyN(8 * n); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(br.buf[len(br.buf)-8:]), nil
}

// readBlock reads one block, whose columns' data it owns. withInfo: the block
// starts with BlockInfo (the protocol's Data packet; the Native format has
// none). flags: each column has the custom serialization flag (protocol
// revision >= 54454).
func (br *blockReader) readBlock(withInfo, flags bool) (block, error) {
	b, err := br.readBlockShared(withInfo, flags)
	if err != nil {
		return b, err
	}
	// The columns' data lie one after the other from the start of buf.
	data := slices.Clone(br.buf)
	off := 0
	for i, c := range b.Cols {
		end := off + len(c.Data)
		b.Cols[i].Data = data[off:end:end]
		off = end
	}
	return b, nil
}

// readBlockShared is readBlock with the columns' data in the reader's buffer:
// valid until the next read, for a caller that is done with the block by then.
func (br *blockReader) readBlockShared(withInfo, flags bool) (block, error) {
	var b block
	br.buf = br.buf[:0]
	br.left = maxBlockBytes
	if withInfo {
		if err := br.skipBlockInfo(); err != nil {
			return b, fmt.Errorf("block info: %w", err)
		}
	}
	cols, err := br.uvarint()
	if err != nil {
		return b, fmt.Errorf("columns: %w", err)
	}
	rows, err := br.uvarint()
	if err != nil {
		return b, fmt.Errorf("rows: %w", err)
	}
	if cols > maxBlockColumns || rows > maxBlockRows {
		return b, fmt.Errorf("%d columns, %d rows: %w", cols, rows, errBlockTooLarge)
	}
	b.Rows = int(rows)
	b.Cols = make([]column, 0, cols)
	for range cols {
		var c column
		if c.Name, err = br.str(maxNameLen); err != nil {
			return b, fmt.Errorf("column name: %w", err)
		}
		if c.Type, err = br.str(maxNameLen); err != nil {
			return b, fmt.Errorf("column %q type: %w", c.Name, err)
		}
		if flags {
			custom, err := br.r.ReadByte()
			if err != nil {
				return b, fmt.Errorf("column %q serialization: %w", c.Name, err)
			}
			if custom != 0 {
				return b, fmt.Errorf("column %q: custom serialization is not supported", c.Name)
			}
		}
		start := len(br.buf)
		if rows > 0 {
			t, err := parseType(c.Type)
			if err != nil {
				return b, fmt.Errorf("column %q: %w", c.Name, err)
			}
			if err := br.prefix(t); err != nil {
				return b, fmt.Errorf("column %q %s: %w", c.Name, c.Type, err)
			}
			if err := br.values(t, rows); err != nil {
				return b, fmt.Errorf("column %q %s: %w", c.Name, c.Type, err)
			}
		}
		end := len(br.buf)
		c.Data = br.buf[start:end:end]
		b.Cols = append(b.Cols, c)
	}
	return b, nil
}

// skipBlockInfo reads BlockInfo: field numbers with values, 0 ends.
func (br *blockReader) skipBlockInfo() error {
	for {
		f, err := br.uvarint()
		if err != nil {
			return err
		}
		switch f {
		case 0:
			return nil
		case 1: // is_overflows
			if _, err := br.r.ReadByte(); err != nil {
				return err
			}
		case 2: // bucket_num
			var b [4]byte
			if _, err := io.ReadFull(br.r, b[:]); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown block info field %d", f)
		}
	}
}

// prefix reads the serialization state prefix of a column, which comes
// before its values: LowCardinality writes its keys version there.
func (br *blockReader) prefix(t dataType) error {
	switch t.name {
	case "LowCardinality":
		v, err := br.lastUint64(1)
		if err != nil {
			return err
		}
		if v != 1 {
			return fmt.Errorf("LowCardinality keys version %d", v)
		}
	case "Array", "Nullable", "Map", "Tuple":
		for _, e := range t.elems {
			if err := br.prefix(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// values reads rows values of type t.
func (br *blockReader) values(t dataType, rows uint64) error {
	if rows == 0 {
		return nil
	}
	if t.size > 0 {
		if rows > uint64(br.left)/uint64(t.size) {
			return fmt.Errorf("%d rows: %w", rows, errBlockTooLarge)
		}
		return br.copyN(rows * uint64(t.size))
	}
	switch t.name {
	case "String":
		for range rows {
			n, err := br.uvarint()
			if err != nil {
				return err
			}
			br.buf = binary.AppendUvarint(br.buf, n)
			if err := br.copyN(n); err != nil {
				return err
			}
		}
		return nil
	case "Nullable":
		if err := br.copyN(rows); err != nil {
			return err
		}
		return br.values(t.elems[0], rows)
	case "Array", "Map":
		n, err := br.lastUint64(rows)
		if err != nil {
			return err
		}
		for _, e := range t.elems {
			if err := br.values(e, n); err != nil {
				return err
			}
		}
		return nil
	case "Tuple":
		for _, e := range t.elems {
			if err := br.values(e, rows); err != nil {
				return err
			}
		}
		return nil
	case "LowCardinality":
		return br.lowCardinality(t.elems[0], rows)
	}
	return fmt.Errorf("type %s is not supported", t.name)
}

// LowCardinality index serialization flags (SerializationLowCardinality).
const (
	lcKeyTypeMask       = 0xff
	lcNeedGlobalDict    = 1 << 8
	lcHasAdditionalKeys = 1 << 9
)

// lowCardinality reads groups of (flags, [dictionary], indexes) until rows
// indexes have been read.
func (br *blockReader) lowCardinality(dict dataType, rows uint64) error {
	if dict.name == "Nullable" {
		dict = dict.elems[0] // the dictionary holds the nested type, null is key 0
	}
	for rows > 0 {
		flags, err := br.lastUint64(1)
		if err != nil {
			return err
		}
		if flags&lcNeedGlobalDict != 0 {
			return errors.New("LowCardinality global dictionary is not supported")
		}
		keySize := uint64(1) << (flags & lcKeyTypeMask)
		if flags&lcKeyTypeMask > 3 {
			return fmt.Errorf("LowCardinality key type %d", flags&lcKeyTypeMask)
		}
		if flags&lcHasAdditionalKeys != 0 {
			keys, err := br.lastUint64(1)
			if err != nil {
				return err
			}
			if err := br.values(dict, keys); err != nil {
				return err
			}
		}
		n, err := br.lastUint64(1)
		if err != nil {
			return err
		}
		if n == 0 || n > rows {
			return fmt.Errorf("LowCardinality has %d indexes for %d rows", n, rows)
		}
		if err := br.copyN(n * keySize); err != nil {
			return err
		}
		rows -= n
	}
	return nil
}

// dataType is a parsed ClickHouse type: size > 0 for fixed-width values.
type dataType struct {
	name  string
	size  int
	elems []dataType
}

// fixedSizes are the widths of fixed-width types' values.
var fixedSizes = map[string]int{
	"UInt8": 1, "Int8": 1, "Bool": 1, "Enum8": 1, "Nothing": 1,
	"UInt16": 2, "Int16": 2, "Date": 2, "Enum16": 2, "BFloat16": 2,
	"UInt32": 4, "Int32": 4, "Float32": 4, "Date32": 4, "DateTime": 4, "IPv4": 4, "Decimal32": 4, "Time": 4,
	"UInt64": 8, "Int64": 8, "Float64": 8, "DateTime64": 8, "Decimal64": 8, "Time64": 8,
	"UInt128": 16, "Int128": 16, "UUID": 16, "IPv6": 16, "Decimal128": 16,
	"UInt256": 32, "Int256": 32, "Decimal256": 32,
}

// typeAliases are geo types, which are names for other types.
var typeAliases = map[string]string{
	"Point":           "Tuple(Float64, Float64)",
	"Ring":            "Array(Tuple(Float64, Float64))",
	"LineString":      "Array(Tuple(Float64, Float64))",
	"MultiLineString": "Array(Array(Tuple(Float64, Float64)))",
	"Polygon":         "Array(Array(Tuple(Float64, Float64)))",
	"MultiPolygon":    "Array(Array(Array(Tuple(Float64, Float64))))",
}

// parseType parses a type name as ClickHouse writes it in blocks.
func parseType(s string) (dataType, error) {
	return parseTypeDepth(strings.TrimSpace(s), 0)
}

func parseTypeDepth(s string, depth int) (dataType, error) {
	if depth > 32 {
		return dataType{}, fmt.Errorf("type %q: nested too deep", s)
	}
	name, args, hasArgs := strings.Cut(s, "(")
	name = strings.TrimSpace(name)
	if hasArgs {
		if !strings.HasSuffix(args, ")") {
			return dataType{}, fmt.Errorf("type %q: missing )", s)
		}
		args = args[:len(args)-1]
	}
	if alias, ok := typeAliases[name]; ok && !hasArgs {
		return parseTypeDepth(alias, depth+1)
	}
	if size, ok := fixedSizes[name]; ok {
		return dataType{name: name, size: size}, nil
	}
	if strings.HasPrefix(name, "Interval") {
		return dataType{name: name, size: 8}, nil
	}
	t := dataType{name: name}
	parts := splitArgs(args)
	switch name {
	case "String":
		return t, nil
	case "FixedString":
		n, err := strconv.Atoi(strings.TrimSpace(args))
		if err != nil || n <= 0 || n > maxNameLen {
			return t, fmt.Errorf("type %q: bad size", s)
		}
		t.size = n
		return t, nil
	case "Decimal":
		p, err := strconv.Atoi(strings.TrimSpace(parts[0]))
		if err != nil || p < 1 || p > 76 {
			return t, fmt.Errorf("type %q: bad precision", s)
		}
		switch {
		case p <= 9:
			t.size = 4
		case p <= 18:
			t.size = 8
		case p <= 38:
			t.size = 16
		default:
			t.size = 32
		}
		return t, nil
	case "SimpleAggregateFunction":
		// Values are those of the argument type: SimpleAggregateFunction(f, T).
		if len(parts) < 2 {
			return t, fmt.Errorf("type %q: want function and type", s)
		}
		return parseTypeDepth(strings.TrimSpace(strings.Join(parts[1:], ",")), depth+1)
	case "Nullable", "Array", "LowCardinality":
		if len(parts) != 1 || !hasArgs {
			return t, fmt.Errorf("type %q: want one argument", s)
		}
	case "Map":
		if len(parts) != 2 {
			return t, fmt.Errorf("type %q: want two arguments", s)
		}
	case "Tuple":
		if !hasArgs || strings.TrimSpace(args) == "" {
			return t, fmt.Errorf("type %q: empty tuple is not supported", s)
		}
		for i, p := range parts {
			parts[i] = tupleElemType(p)
		}
	default:
		return t, fmt.Errorf("type %q is not supported by chlocal", s)
	}
	for _, p := range parts {
		e, err := parseTypeDepth(strings.TrimSpace(p), depth+1)
		if err != nil {
			return t, err
		}
		t.elems = append(t.elems, e)
	}
	return t, nil
}

// splitArgs splits type arguments at top-level commas.
func splitArgs(s string) []string {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
		case '\'', '`', '"':
			i = quoteEnd(s, i) - 1
		case ',':
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}

// tupleElemType strips the element name of a named tuple element: "a UInt8".
func tupleElemType(s string) string {
	s = strings.TrimSpace(s)
	if s != "" && (s[0] == '`' || s[0] == '"') {
		return s[quoteEnd(s, 0):]
	}
	i := strings.IndexAny(s, " (")
	if i < 0 || s[i] == '(' {
		return s
	}
	return s[i+1:]
}

// appendBlock appends b in the Native format, or as a protocol Data block
// body when withInfo (BlockInfo first) and flags (custom serialization flag
// per column).
func appendBlock(dst []byte, b block, withInfo, flags bool) []byte {
	n := 8 + 2*binary.MaxVarintLen64 // block info, column and row counts
	for _, c := range b.Cols {
		n += 2*binary.MaxVarintLen64 + len(c.Name) + len(c.Type) + 1 + len(c.Data)
	}
	dst = slices.Grow(dst, n) // once: an INSERT's blocks run to megabytes
	if withInfo {
		// is_overflows = false, bucket_num = -1, end.
		dst = append(dst, 1, 0, 2, 0xff, 0xff, 0xff, 0xff, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(b.Cols)))
	dst = binary.AppendUvarint(dst, uint64(b.Rows))
	for _, c := range b.Cols {
		dst = binary.AppendUvarint(dst, uint64(len(c.Name)))
		dst = append(dst, c.Name...)
		dst = binary.AppendUvarint(dst, uint64(len(c.Type)))
		dst = append(dst, c.Type...)
		if flags {
			dst = append(dst, 0)
		}
		if b.Rows > 0 {
			dst = append(dst, c.Data...)
		}
	}
	return dst
}
