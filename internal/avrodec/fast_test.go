package avrodec

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/pipelined/pipelined/agg"
	"github.com/pipelined/pipelined/internal/schemas"
)

// varintSchema has a varint step of every kind between two strings, whose lengths move the
// varints to any distance from either end of the payload.
const varintSchema = `{"type": "record", "name": "Varints", "fields": [
	{"name": "pre", "type": "string"},
	{"name": "k", "type": "long"},
	{"name": "si", "type": "int"},
	{"name": "t", "type": "long"},
	{"name": "sl", "type": "long"},
	{"name": "s", "type": "long"},
	{"name": "post", "type": "string"}
]}`

var varintFields = Fields{Key: "k", Time: "t", Status: "s"}

// intSchema is ints only: most of its payloads are shorter than the word the fast plan loads.
const intSchema = `{"type": "record", "name": "Ints", "fields": [
	{"name": "k", "type": "int"}, {"name": "t", "type": "int"}, {"name": "s", "type": "int"}]}`

var intFields = Fields{Key: "k", Time: "t", Status: "s"}

// runSchema has a run of five doubles (four at a time, then one), enums, a nullable double, and
// fields only careful steps read.
const runSchema = `{"type": "record", "name": "Runs", "fields": [
	{"name": "k", "type": "int"},
	{"name": "m0", "type": "double"}, {"name": "m1", "type": "double"}, {"name": "m2", "type": "double"},
	{"name": "m3", "type": "double"}, {"name": "m4", "type": "double"},
	{"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["R", "G", "B"]}},
	{"name": "s", "type": {"type": "enum", "name": "State", "symbols": ["OK", "WARN", "FAIL", "OFF"]}},
	{"name": "f", "type": "float"},
	{"name": "h", "type": {"type": "fixed", "name": "H", "size": 3}},
	{"name": "flag", "type": "boolean"},
	{"name": "m6", "type": "double"},
	{"name": "m7", "type": ["null", "double"]},
	{"name": "t", "type": "long"}
]}`

var runFields = Fields{Key: "k", Time: "t", Status: "s", Measures: []string{"m0", "m1", "m2", "m3", "m4", "f", "m6", "m7"}}

// eightSchema has all eight measures in one run: two blocks of four.
const eightSchema = `{"type": "record", "name": "Eight", "fields": [
	{"name": "k", "type": "long"},
	{"name": "m0", "type": "double"}, {"name": "m1", "type": "double"}, {"name": "m2", "type": "double"},
	{"name": "m3", "type": "double"}, {"name": "m4", "type": "double"}, {"name": "m5", "type": "double"},
	{"name": "m6", "type": "double"}, {"name": "m7", "type": "double"},
	{"name": "t", "type": "long"}
]}`

var eightFields = Fields{Key: "k", Time: "t", Measures: []string{"m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7"}}

// shuffledFields reads SensorData's measures out of their order, so that no two are a run, and
// no status.
var shuffledFields = Fields{Key: "sensorId", Time: "timestamp", Measures: []string{"humidity", "temperature", "batteryLevel", "pressure"}}

// noStatusFields reads SensorData without a status: the reference's layout, whose status
// varint is skipped, so that a reading's status is 0.
var noStatusFields = Fields{Key: "sensorId", Time: "timestamp", Measures: sensorFields.Measures}

// fastSchemas are the schemas the fast plan's tests decode, with random values for them.
var fastSchemas = []struct {
	name   string
	schema string
	fields Fields
	value  func(*rand.Rand) map[string]any
}{
	{"SensorData", schemas.SensorData, sensorFields, sensorValue},
	{"SensorDataShuffled", schemas.SensorData, shuffledFields, sensorValue},
	{"SensorDataNoStatus", schemas.SensorData, noStatusFields, sensorValue},
	{"SensorDataPadded", schemas.SensorDataPadded, sensorFields, func(rng *rand.Rand) map[string]any {
		v := sensorValue(rng)
		for _, name := range []string{"deviceType", "site", "customer", "firmware", "location", "serialNumber"} {
			v[name] = randString(rng)
		}
		return v
	}},
	{"Varints", varintSchema, varintFields, func(rng *rand.Rand) map[string]any {
		s := int64(randInt(rng))
		if rng.IntN(8) == 0 {
			s = randLong(rng) // out of the int32 range, mostly
		}
		return map[string]any{"pre": randString(rng), "k": randLong(rng), "si": randInt(rng),
			"t": randLong(rng), "sl": randLong(rng), "s": s, "post": randString(rng)}
	}},
	{"Ints", intSchema, intFields, func(rng *rand.Rand) map[string]any {
		return map[string]any{"k": randInt(rng), "t": randInt(rng), "s": randInt(rng)}
	}},
	{"Runs", runSchema, runFields, func(rng *rand.Rand) map[string]any {
		v := map[string]any{"k": randInt(rng), "color": []string{"R", "G", "B"}[rng.IntN(3)],
			"s": []string{"OK", "WARN", "FAIL", "OFF"}[rng.IntN(4)], "f": float32(randDouble(rng)),
			"h": [3]byte{1, 2, 3}, "flag": rng.IntN(2) == 0, "m6": randDouble(rng), "m7": nil, "t": randLong(rng)}
		for i := range 5 {
			v["m"+string(rune('0'+i))] = randDouble(rng)
		}
		if rng.IntN(2) == 0 {
			v["m7"] = map[string]any{"double": randDouble(rng)}
		}
		return v
	}},
	{"RefLongs", refLongSchema, refLongFields, refLongValue},
	{"Eight", eightSchema, eightFields, func(rng *rand.Rand) map[string]any {
		v := map[string]any{"k": randLong(rng), "t": randLong(rng)}
		for i := range 8 {
			v["m"+string(rune('0'+i))] = randDouble(rng)
		}
		return v
	}},
}

func sensorValue(rng *rand.Rand) map[string]any {
	return map[string]any{"sensorId": randInt(rng), "sensorType": randInt(rng), "temperature": randDouble(rng),
		"humidity": randDouble(rng), "pressure": randDouble(rng), "batteryLevel": randDouble(rng),
		"status": randInt(rng), "timestamp": randLong(rng)}
}

// randLong returns a long whose varint takes any length from 1 to 10 bytes.
func randLong(rng *rand.Rand) int64 {
	v := int64(rng.Uint64() >> rng.IntN(64))
	if rng.IntN(2) == 0 {
		v = -v
	}
	return v
}

// randInt returns an int whose varint takes any length from 1 to 5 bytes.
func randInt(rng *rand.Rand) int32 {
	v := int32(rng.Uint32() >> rng.IntN(32))
	if rng.IntN(2) == 0 {
		v = -v
	}
	return v
}

// randDouble returns a double of random bits, NaNs and infinities included.
func randDouble(rng *rand.Rand) float64 { return math.Float64frombits(rng.Uint64()) }

// randString returns a string whose length takes one or two bytes, often one.
func randString(rng *rand.Rand) string {
	n := []int{0, 1, rng.IntN(8), rng.IntN(64), rng.IntN(150)}[rng.IntN(5)]
	return strings.Repeat("x", n)
}

// TestDecodeFastAgrees decodes random records of every fastSchemas schema, and every prefix,
// extension and one-byte change of them: Decode must agree with the careful way, and with
// hamba/avro on the whole records.
func TestDecodeFastAgrees(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, fs := range fastSchemas {
		t.Run(fs.name, func(t *testing.T) {
			d := mustDecoder(t, fs.schema, fs.fields)
			for range 100 {
				b := mustMarshal(t, fs.schema, fs.value(rng))
				checkAgainstHamba(t, d, fs.schema, fs.fields, b)
				checkEveryCut(t, d, b)
			}
		})
	}
}

// checkEveryCut checks that Decode agrees with the careful way on b, on every prefix of b, on b
// with bytes after it, and on b with each byte replaced by bytes that end or continue a varint,
// or flip its sign. Each payload's capacity is its length, so that a read past the end panics.
func checkEveryCut(t *testing.T, d *Decoder, b []byte) {
	t.Helper()
	for n := range len(b) + 1 {
		checkFastCareful(t, d, b[:n:n])
	}
	for _, tail := range [][]byte{{0}, {0x80}, {0, 0, 0, 0, 0, 0, 0, 0}} {
		c := append(slices.Clone(b), tail...)
		checkFastCareful(t, d, c[:len(c):len(c)])
	}
	c := slices.Clone(b)
	c = c[:len(c):len(c)]
	for i, orig := range c {
		for _, v := range []byte{0x00, 0x01, 0x02, 0x7f, 0x80, 0x81, 0xfe, 0xff} {
			c[i] = v
			checkFastCareful(t, d, c)
		}
		c[i] = orig
	}
}

// TestDecodeVarintEdges decodes hand-made payloads at the edges of the varint reader: every
// length, overflows, non-canonical encodings, and varints near the end of the payload.
func TestDecodeVarintEdges(t *testing.T) {
	// zz encodes v as a zig-zag varint.
	zz := func(v int64) []byte { return binary.AppendUvarint(nil, uint64(v<<1^v>>63)) }
	str := func(n int) []byte { return append(zz(int64(n)), strings.Repeat("x", n)...) }
	cat := func(parts ...[]byte) []byte { return slices.Concat(parts...) }
	// varints is a varintSchema record around the given fields, with strings of pre and post bytes.
	varints := func(pre int, k, si, tm, sl, s []byte, post int) []byte {
		return cat(str(pre), k, si, tm, sl, s, str(post))
	}
	one := zz(1)
	for _, tt := range []struct {
		name   string
		schema string
		f      Fields
		b      []byte
		reason string // "" for success
		want   agg.Reading
	}{
		{"ints, 3 bytes", intSchema, intFields, cat(zz(1), zz(-2), zz(3)), "", agg.Reading{Key: 1, TimeMs: -2, Status: 3}},
		{"ints of 5 bytes", intSchema, intFields, cat(zz(math.MaxInt32), zz(math.MinInt32), zz(-1)), "",
			agg.Reading{Key: math.MaxInt32, TimeMs: math.MinInt32, Status: -1}},
		{"int of 6 bytes", intSchema, intFields, cat([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, one, one), ReasonMalformed, agg.Reading{}},
		{"int of 6 bytes at the end", intSchema, intFields, cat(one, one, []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x00}), ReasonMalformed, agg.Reading{}},
		{"int over 32 bits", intSchema, intFields, cat([]byte{0xff, 0xff, 0xff, 0xff, 0x1f}, one, one), ReasonMalformed, agg.Reading{}},
		{"int over 32 bits in the middle", intSchema, intFields, cat(one, []byte{0x80, 0x80, 0x80, 0x80, 0x10}, one), ReasonMalformed, agg.Reading{}},
		{"int non-canonical", intSchema, intFields, cat([]byte{0x82, 0x80, 0x80, 0x00}, one, one), "", agg.Reading{Key: 1, TimeMs: 1, Status: 1}},
		{"int truncated at the end", intSchema, intFields, cat(one, one, []byte{0x80}), ReasonTruncated, agg.Reading{}},
		{"ints, 1 byte short", intSchema, intFields, cat(one, one), ReasonTruncated, agg.Reading{}},
		{"longs of 9 and 10 bytes", varintSchema, varintFields,
			varints(0, zz(math.MaxInt64), zz(0), zz(math.MinInt64), zz(1<<60), zz(0), 0), "",
			agg.Reading{Key: math.MaxInt64, TimeMs: math.MinInt64}},
		{"longs of 9 and 10 bytes at the end", varintSchema, varintFields,
			cat(str(0), zz(0), zz(0), zz(1<<62), zz(math.MinInt64), zz(7), str(0)), "",
			agg.Reading{TimeMs: 1 << 62, Status: 7}},
		{"long over 64 bits", varintSchema, varintFields,
			varints(0, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, zz(0), zz(0), zz(0), zz(0), 0), ReasonMalformed, agg.Reading{}},
		{"long of 11 bytes", varintSchema, varintFields,
			varints(0, zz(0), zz(0), []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, zz(0), zz(0), 0), ReasonMalformed, agg.Reading{}},
		{"long of 8 bytes", varintSchema, varintFields,
			varints(3, zz(1<<55-1), zz(0), zz(-1<<55), zz(0), zz(0), 3), "", agg.Reading{Key: 1<<55 - 1, TimeMs: -1 << 55}},
		{"long non-canonical", varintSchema, varintFields,
			varints(0, []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, zz(0), zz(5), zz(0), zz(0), 0), "", agg.Reading{TimeMs: 5}},
		{"status long over int32", varintSchema, varintFields,
			varints(0, zz(1), zz(2), zz(3), zz(4), zz(math.MaxInt32+1), 0), ReasonMalformed, agg.Reading{}},
		{"status long at int32 min", varintSchema, varintFields,
			varints(0, zz(1), zz(2), zz(3), zz(4), zz(math.MinInt32), 0), "", agg.Reading{Key: 1, TimeMs: 3, Status: math.MinInt32}},
		{"longs of 6 bytes", varintSchema, varintFields,
			varints(0, zz(1<<40), zz(0), zz(-1<<40), zz(1<<34), zz(0), 0), "", agg.Reading{Key: 1 << 40, TimeMs: -1 << 40}},
		{"longs of 6 bytes at the end", varintSchema, varintFields,
			cat(str(0), zz(1), zz(2), zz(1_764_000_000_123), zz(0), zz(0), str(0))[:9], ReasonTruncated, agg.Reading{}},
		{"status long of 6 bytes over int32", varintSchema, varintFields,
			varints(0, zz(1), zz(2), zz(3), zz(4), zz(1<<40), 0), ReasonMalformed, agg.Reading{}},
		{"status long of 6 bytes non-canonical", varintSchema, varintFields,
			varints(0, zz(1), zz(2), zz(3), zz(4), []byte{0x8a, 0x80, 0x80, 0x80, 0x80, 0x00}, 0), "",
			agg.Reading{Key: 1, TimeMs: 3, Status: 5}},
		{"string of two-byte length", varintSchema, varintFields,
			varints(100, zz(1), zz(2), zz(3), zz(4), zz(5), 200), "", agg.Reading{Key: 1, TimeMs: 3, Status: 5}},
		{"string of negative two-byte length", varintSchema, varintFields,
			cat(zz(-100), zz(1), zz(2), zz(3), zz(4), zz(5), str(0)), ReasonMalformed, agg.Reading{}},
		{"string past the end", varintSchema, varintFields,
			cat(str(0), zz(1), zz(2), zz(3), zz(4), zz(5), zz(2), []byte{'x'}), ReasonTruncated, agg.Reading{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := mustDecoder(t, tt.schema, tt.f)
			b := tt.b[:len(tt.b):len(tt.b)]
			var r agg.Reading
			err := d.Decode(b, &r)
			var de *Error
			switch {
			case tt.reason == "" && err != nil:
				t.Fatalf("Decode(%x) = %v, want %+v", b, err, tt.want)
			case tt.reason == "" && !sameReading(r, tt.want):
				t.Fatalf("Decode(%x) = %+v, want %+v", b, r, tt.want)
			case tt.reason != "" && (!errors.As(err, &de) || de.Reason != tt.reason):
				t.Fatalf("Decode(%x) = %v, want reason %q", b, err, tt.reason)
			}
			checkEveryCut(t, d, b)
		})
	}
}

// runValue is a runSchema record with the fields in over replaced.
func runValue(over map[string]any) map[string]any {
	v := map[string]any{"k": 9, "m0": 0.5, "m1": 1.5, "m2": 2.5, "m3": 3.5, "m4": 4.5, "color": "B", "s": "OFF",
		"f": float32(5.5), "h": [3]byte{1, 2, 3}, "flag": true, "m6": 6.5, "m7": nil, "t": int64(1_764_000_000_000)}
	for name, x := range over {
		v[name] = x
	}
	return v
}

var runReading = agg.Reading{Key: 9, TimeMs: 1_764_000_000_000, Status: 3,
	Values: [agg.MaxMeasures]float64{0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, math.NaN()}}

// TestDecodeEnums checks the enum steps of the fast plan: in range, out of range, negative.
func TestDecodeEnums(t *testing.T) {
	d := mustDecoder(t, runSchema, runFields)
	good := mustMarshal(t, runSchema, runValue(nil))
	var r agg.Reading
	if err := d.Decode(good, &r); err != nil || !sameReading(r, runReading) {
		t.Fatalf("Decode = %+v, %v; want %+v", r, err, runReading)
	}
	// color is after k and m0..m4, then s; long0 is 0 in six bytes, too long for an int.
	at := 1 + 5*8
	long0 := []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x00}
	for _, tt := range []struct {
		name  string
		off   int
		v     []byte
		field string
	}{
		{"color past the last symbol", at, []byte{3 << 1}, "color"},
		{"negative color", at, []byte{1}, "color"},
		{"color of six bytes", at, long0, "color"},
		{"status past the last symbol", at + 1, []byte{4 << 1}, "s"},
		{"negative status", at + 1, []byte{1}, "s"},
		{"status of six bytes", at + 1, long0, "s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := slices.Concat(good[:tt.off], tt.v, good[tt.off+1:])
			err := d.Decode(b, &r)
			var de *Error
			if !errors.As(err, &de) || de.Reason != ReasonMalformed || de.Field != tt.field {
				t.Fatalf("Decode = %v, want %s in field %q", err, ReasonMalformed, tt.field)
			}
			checkFastCareful(t, d, b)
		})
	}
}

// TestDecodeStaysFast checks that the common records decode without a careful step, which
// the agreement tests cannot tell: going the careful way gives the same answers, only slower.
func TestDecodeStaysFast(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, fs := range fastSchemas {
		if fs.name == "Runs" { // its float, fixed and boolean are careful steps
			continue
		}
		t.Run(fs.name, func(t *testing.T) {
			d := mustDecoder(t, fs.schema, fs.fields)
			for range 100 {
				b := mustMarshal(t, fs.schema, fs.value(rng))
				const sentinel = -7 // decodeCareful and step set stepIndex
				d.stepIndex = sentinel
				var r agg.Reading
				if err := d.Decode(b, &r); err == nil && d.stepIndex != sentinel {
					t.Fatalf("Decode(%x) went the careful way, to step %d", b, d.stepIndex)
				}
			}
		})
	}
}

// TestFastPlan checks the fast plan of the reference record, and the payload lengths it tries.
func TestFastPlan(t *testing.T) {
	d := mustDecoder(t, schemas.SensorData, sensorFields)
	want := []fastStep{
		{op: fVarint, idx: slotKey, maxLen: maxInt32Len, maxV: maxInt32V},
		{op: fVarint, idx: slotNone, maxLen: maxInt32Len, maxV: maxInt32V},
		{op: fDoubles, idx: 0, n: 4},
		{op: fVarint, idx: slotStatus, maxLen: maxInt32Len, maxV: maxInt32V},
		{op: fVarint, idx: slotTime, maxLen: maxInt64Len, maxV: maxInt64V},
	}
	if !slices.Equal(d.fast, want) {
		t.Fatalf("fast plan = %+v, want %+v", d.fast, want)
	}
	if d.fastMin != 36 || d.fastSpan != 4096-36 {
		t.Fatalf("fast plan lengths %d+%d, want 36+%d", d.fastMin, d.fastSpan, 4096-36)
	}
	for _, tt := range []struct {
		maxBytes int
		min      int
		span     uint
	}{
		{0, 36, math.MaxInt - 36},
		{36, 36, 0},
		{35, math.MaxInt, 0}, // no record fits
	} {
		if lo, span := fastLens(d.fast, tt.maxBytes); lo != tt.min || span != tt.span {
			t.Errorf("fastLens(maxBytes %d) = %d, %d; want %d, %d", tt.maxBytes, lo, span, tt.min, tt.span)
		}
	}
}
