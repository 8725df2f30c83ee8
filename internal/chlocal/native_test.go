package chlocal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseType(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string // dataType printed by typeString, or "error"
	}{
		{"UInt64", "UInt64/8"},
		{"DateTime('Europe/Berlin')", "DateTime/4"},
		{"DateTime64(3, 'UTC')", "DateTime64/8"},
		{"Decimal(9, 2)", "Decimal/4"},
		{"Decimal(38, 10)", "Decimal/16"},
		{"Decimal(76, 0)", "Decimal/32"},
		{"FixedString(16)", "FixedString/16"},
		{"Enum8('a, b' = 1, 'c)' = 2)", "Enum8/1"},
		{"IntervalSecond", "IntervalSecond/8"},
		{"Nullable(String)", "Nullable(String)"},
		{"Array(Array(Nullable(UInt8)))", "Array(Array(Nullable(UInt8/1)))"},
		{"Map(LowCardinality(String), Array(UInt32))", "Map(LowCardinality(String),Array(UInt32/4))"},
		{"Tuple(a UInt8, `b c` String, DateTime64(3))", "Tuple(UInt8/1,String,DateTime64/8)"},
		{"SimpleAggregateFunction(sum, UInt128)", "UInt128/16"},
		{"SimpleAggregateFunction(anyLast, Nullable(String))", "Nullable(String)"},
		{"Point", "Tuple(Float64/8,Float64/8)"},
		{"Ring", "Array(Tuple(Float64/8,Float64/8))"},
		{"AggregateFunction(sum, UInt64)", "error"},
		{"JSON", "error"},
		{"Array(", "error"},
		{"Nullable(String, String)", "error"},
		{"Tuple()", "error"},
		{"FixedString(0)", "error"},
		{strings.Repeat("Array(", 40) + "UInt8" + strings.Repeat(")", 40), "error"},
	} {
		got, err := parseType(tt.in)
		s := "error"
		if err == nil {
			s = typeString(got)
		}
		if s != tt.want {
			t.Errorf("parseType(%q) = %s (%v), want %s", tt.in, s, err, tt.want)
		}
	}
}

func typeString(t dataType) string {
	if t.size > 0 {
		return fmt.Sprintf("%s/%d", t.name, t.size)
	}
	if len(t.elems) == 0 {
		return t.name
	}
	var parts []string
	for _, e := range t.elems {
		parts = append(parts, typeString(e))
	}
	return t.name + "(" + strings.Join(parts, ",") + ")"
}

// TestNativeRoundTrip checks the block walker against the engine: blocks of
// every supported type, as the engine writes them, are split, written back
// in the Native format and inserted, and read back equal.
func TestNativeRoundTrip(t *testing.T) {
	s := NewTest(t)
	createDatabase(t, s, "native")
	for i, tt := range []struct{ typ, expr string }{
		{"UInt8", "number % 256"},
		{"Int16", "-number"},
		{"Int32", "number * 1000"},
		{"Int64", "-number * 100000"},
		{"UInt128", "number * 18446744073709551615"},
		{"Int256", "-number"},
		{"Float32", "number / 3"},
		{"Float64", "number / 7"},
		{"Bool", "number % 3 = 0"},
		{"Date", "toDate('2024-01-01') + number"},
		{"Date32", "toDate32('1960-01-01') + number"},
		{"DateTime('UTC')", "toDateTime('2024-01-01 00:00:00', 'UTC') + number"},
		{"DateTime64(6, 'UTC')", "toDateTime64('2024-01-01 00:00:00', 6, 'UTC') + number"},
		{"Decimal(9, 2)", "number / 100"},
		{"Decimal(18, 4)", "number / 10000"},
		{"Decimal(38, 10)", "number / 3"},
		{"Decimal(76, 20)", "number / 7"},
		{"UUID", "toUUID(concat('00000000-0000-0000-0000-', leftPad(toString(number), 12, '0')))"},
		{"IPv4", "toIPv4(number)"},
		{"IPv6", "toIPv6('::1')"},
		{"Enum8('a' = 1, 'b' = 2)", "if(number % 2 = 0, 'a', 'b')"},
		{"Enum16('x' = 1000, 'y' = -1000)", "if(number % 2 = 0, 'x', 'y')"},
		{"FixedString(5)", "leftPad(toString(number % 100000), 5, '0')"},
		{"String", "repeat('x', number % 300)"},
		{"Nullable(String)", "if(number % 3 = 0, NULL, toString(number))"},
		{"Nullable(UInt32)", "if(number % 3 = 0, NULL, number)"},
		{"Array(String)", "arrayMap(x -> toString(x), range(number % 5))"},
		{"Array(Array(UInt8))", "[range(number % 3), range(number % 4)]"},
		{"Array(Nullable(Int64))", "[NULL, number, -number]"},
		{"Map(String, UInt64)", "map(toString(number), number, 'k', 1)"},
		{"Tuple(a UInt8, b String)", "tuple(number % 256, toString(number))"},
		{"Tuple(UInt8, Array(String))", "tuple(number % 256, [toString(number)])"},
		{"LowCardinality(String)", "toString(number % 17)"},
		{"LowCardinality(Nullable(String))", "if(number % 5 = 0, NULL, toString(number % 17))"},
		{"LowCardinality(String)", "toString(number)"}, // large dictionary
		{"Array(LowCardinality(String))", "[toString(number % 7), 'x']"},
		{"Map(LowCardinality(String), Array(UInt32))", "map(toString(number % 3), [number])"},
		{"Nullable(Nothing)", "NULL"}, // not in tables: split only
		{"IntervalSecond", "toIntervalSecond(number)"},
		{"Point", "(number / 2, number / 3)"},
		{"Ring", "[(number / 2, 0.5), (1.5, number / 3)]"},
		{"SimpleAggregateFunction(sum, UInt64)", "number"},
		{"SimpleAggregateFunction(max, Nullable(String))", "toString(number)"},
	} {
		t.Run(tt.typ, func(t *testing.T) {
			table := fmt.Sprintf("native.t%d", i)
			src := fmt.Sprintf("SELECT CAST(%s AS %s) AS c FROM numbers(100000)", tt.expr, tt.typ)
			_, err := s.Query("CREATE TABLE " + table + " (c " + tt.typ + ") ENGINE = Memory")
			splitOnly := err != nil && strings.Contains(err.Error(), "cannot be used in tables")
			if err != nil && !splitOnly {
				t.Fatal(err)
			}
			r, err := s.eng.run("default", nil, []byte(src), "Native")
			if err != nil {
				t.Fatalf("%s: %v", src, err)
			}
			blocks, err := splitNative(r.Data)
			r.free()
			if err != nil {
				t.Fatalf("split: %v", err)
			}
			var native []byte
			rows := 0
			for _, b := range blocks {
				// Through the protocol encoding and back, as a client's block.
				br := blockReader{r: bytes.NewReader(appendBlock(nil, b, true, true))}
				b, err := br.readBlock(true, true)
				if err != nil {
					t.Fatalf("protocol round trip: %v", err)
				}
				native = appendBlock(native, b, false, false)
				rows += b.Rows
			}
			if rows != 100000 || len(blocks) < 2 {
				t.Fatalf("split into %d blocks of %d rows in all, want several of 100000", len(blocks), rows)
			}
			if splitOnly {
				return
			}
			file := filepath.Join(t.TempDir(), "blocks.native")
			if err := os.WriteFile(file, native, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Query("INSERT INTO " + table + " FROM INFILE " + quoteString(file) + " FORMAT Native"); err != nil {
				t.Fatalf("insert: %v", err)
			}
			const check = "SELECT count(), sum(cityHash64(toString(c))) FROM "
			want, err := s.Query(check + "(" + src + ")")
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Query(check + table)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("count and hash: got %q, want %q", got, want)
			}
		})
	}
}

func TestReadBlockGarbage(t *testing.T) {
	valid := appendBlock(nil, block{Rows: 2, Cols: []column{
		{Name: "s", Type: "String", Data: []byte("\x01a\x02bc")},
		{Name: "n", Type: "UInt16", Data: []byte{1, 0, 2, 0}},
	}}, true, true)
	for _, tt := range []struct {
		name string
		in   []byte
		err  error // nil: any error
	}{
		{"truncated", valid[:len(valid)-1], nil},
		{"huge rows", []byte{0, 1, 0xff, 0xff, 0xff, 0xff, 0x7f}, errBlockTooLarge},
		{"huge string", append(valid[:11:11], 0xff, 0xff, 0xff, 0xff, 0x7f), errBlockTooLarge},
		{"unknown type", appendBlock(nil, block{Rows: 1, Cols: []column{{Name: "x", Type: "Object('json')"}}}, true, true), nil},
		{"custom serialization", bytes.Replace(valid, []byte("String\x00"), []byte("String\x01"), 1), nil},
	} {
		br := blockReader{r: bytes.NewReader(tt.in)}
		_, err := br.readBlock(true, true)
		if err == nil || tt.err != nil && !errors.Is(err, tt.err) {
			t.Errorf("%s: error %v, want %v", tt.name, err, tt.err)
		}
	}
	br := blockReader{r: bytes.NewReader(valid)}
	b, err := br.readBlock(true, true)
	if err != nil || b.Rows != 2 || string(b.Cols[0].Data) != "\x01a\x02bc" {
		t.Errorf("valid block: %+v, %v", b, err)
	}
}

// BenchmarkAppendBlock is an INSERT block of 50,000 rows and 20 Float64 columns (8 MB) as the
// local ClickHouse writes it to the file INSERT ... FROM INFILE reads.
func BenchmarkAppendBlock(b *testing.B) {
	blk := block{Rows: 50_000}
	for range 20 {
		blk.Cols = append(blk.Cols, column{Name: "c", Type: "Float64", Data: make([]byte, 8*50_000)})
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = appendBlock(nil, blk, false, false)
	}
}
