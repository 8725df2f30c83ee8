package avrodec

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/pipelined/pipelined/agg"
	"github.com/pipelined/pipelined/internal/schemas"
)

// sensorFields are the fields the pipeline reads from SensorData.
var sensorFields = Fields{
	Key:      "sensorId",
	Time:     "timestamp",
	Status:   "status",
	Measures: []string{"temperature", "humidity", "pressure", "batteryLevel"},
}

type sensorData struct {
	SensorID     int32   `avro:"sensorId"`
	SensorType   int32   `avro:"sensorType"`
	Temperature  float64 `avro:"temperature"`
	Humidity     float64 `avro:"humidity"`
	Pressure     float64 `avro:"pressure"`
	BatteryLevel float64 `avro:"batteryLevel"`
	Status       int32   `avro:"status"`
	Timestamp    int64   `avro:"timestamp"`
}

type sensorDataPadded struct {
	sensorData
	DeviceType   string `avro:"deviceType"`
	Site         string `avro:"site"`
	Customer     string `avro:"customer"`
	Firmware     string `avro:"firmware"`
	Location     string `avro:"location"`
	SerialNumber string `avro:"serialNumber"`
}

var sample = sensorData{
	SensorID: 42917, SensorType: 3, Temperature: 23.25, Humidity: 61.5, Pressure: 1003.75,
	BatteryLevel: 87.5, Status: 1, Timestamp: 1_764_000_000_123,
}

var samplePadded = sensorDataPadded{
	sensorData:   sample,
	DeviceType:   "environmental-sensor/model-THP-3100",
	Site:         "eu-west-1/site-0042/building-07/floor-03/zone-B/rack-12",
	Customer:     "customer-00421/acme-industrial-iot-operations/contract-7",
	Firmware:     "fw-3.14.159-build-20260101-rc2",
	Location:     "lat=48.856613;lon=2.352222;alt=35.0m;indoor",
	SerialNumber: "SN-0042917-THP3100-20260101-000042",
}

func mustDecoder(t testing.TB, schema string, f Fields) *Decoder {
	t.Helper()
	d, err := New(avro.MustParse(schema), f, 4096)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

func mustMarshal(t testing.TB, schema string, v any) []byte {
	t.Helper()
	b, err := avro.Marshal(avro.MustParse(schema), v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}

func TestDecodeSensorData(t *testing.T) {
	want := agg.Reading{Key: 42917, TimeMs: 1_764_000_000_123, Status: 1,
		Values: [agg.MaxMeasures]float64{23.25, 61.5, 1003.75, 87.5}}
	for _, tt := range []struct {
		name    string
		schema  string
		v       any
		wantLen int
	}{
		{"SensorData", schemas.SensorData, sample, 43},
		{"SensorDataPadded", schemas.SensorDataPadded, samplePadded, 300},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := mustDecoder(t, tt.schema, sensorFields)
			b := mustMarshal(t, tt.schema, tt.v)
			if len(b) < tt.wantLen-10 || len(b) > tt.wantLen+10 {
				t.Errorf("datum is %d bytes, want about %d", len(b), tt.wantLen)
			}
			// Stale values must not survive: the unused measures are cleared.
			r := agg.Reading{Status: 9, Values: [agg.MaxMeasures]float64{0, 0, 0, 0, 5, 6, 7, 8}}
			if err := d.Decode(b, &r); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if r != want {
				t.Fatalf("Decode = %+v, want %+v", r, want)
			}
		})
	}
}

// kitchenSink has a field of every Avro type to skip, a recursive reference, and every read
// type. Its read fields are id (long key), t (long time), state (enum status) and five measures.
const kitchenSink = `{"type": "record", "name": "Sink", "namespace": "test", "fields": [
	{"name": "id", "type": "long"},
	{"name": "flag", "type": "boolean"},
	{"name": "name", "type": "string"},
	{"name": "raw", "type": "bytes"},
	{"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 4}},
	{"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "BLUE"]}},
	{"name": "state", "type": {"type": "enum", "name": "State", "symbols": ["OK", "WARN", "FAIL"]}},
	{"name": "tags", "type": {"type": "array", "items": "string"}},
	{"name": "bits", "type": {"type": "array", "items": "boolean"}},
	{"name": "points", "type": {"type": "array", "items": "double"}},
	{"name": "hashes", "type": {"type": "array", "items": "Hash"}},
	{"name": "attrs", "type": {"type": "map", "values": "long"}},
	{"name": "inner", "type": {"type": "record", "name": "Inner", "fields": [
		{"name": "a", "type": "int"}, {"name": "b", "type": ["null", "string"]}, {"name": "c", "type": "boolean"}]}},
	{"name": "inners", "type": {"type": "array", "items": "Inner"}},
	{"name": "next", "type": ["null", "Sink"]},
	{"name": "choice", "type": ["int", "string", "Color", {"type": "map", "values": "float"}]},
	{"name": "unit", "type": "null"},
	{"name": "small", "type": "int"},
	{"name": "t", "type": "long"},
	{"name": "temp", "type": ["null", "double"]},
	{"name": "hum", "type": "float"},
	{"name": "cnt", "type": "int"},
	{"name": "big", "type": "long"},
	{"name": "opt", "type": ["float", "null"]},
	{"name": "optInt", "type": ["null", "int"]},
	{"name": "optLong", "type": ["null", "long"]},
	{"name": "optD", "type": ["double", "null"]}
]}`

var sinkFields = Fields{Key: "id", Time: "t", Status: "state",
	Measures: []string{"temp", "hum", "cnt", "big", "opt", "optInt", "optLong", "optD"}}

func sinkValue(next any) map[string]any {
	return map[string]any{
		"id": int64(-77), "flag": true, "name": "héllo", "raw": []byte{0, 1, 2},
		"hash": [4]byte{1, 2, 3, 4}, "color": "BLUE", "state": "FAIL",
		"tags": []any{"a", "", "ccc"}, "bits": []any{true, false}, "points": []any{1.5, -2.5},
		"hashes": []any{[4]byte{9, 9, 9, 9}}, "attrs": map[string]any{"x": int64(1), "y": int64(-1)},
		"inner":  map[string]any{"a": 5, "b": map[string]any{"string": "s"}, "c": false},
		"inners": []any{map[string]any{"a": 1, "b": nil, "c": true}},
		"next":   next, "choice": map[string]any{"map": map[string]any{"k": float32(0.5)}}, "unit": nil,
		"small": 3, "t": int64(1_764_000_000_999), "temp": map[string]any{"double": 21.5}, "hum": float32(0.25),
		"cnt": -3, "big": int64(1) << 40, "opt": nil, "optInt": map[string]any{"int": 7}, "optLong": nil,
		"optD": map[string]any{"double": -0.5},
	}
}

func TestDecodeKitchenSink(t *testing.T) {
	d := mustDecoder(t, kitchenSink, sinkFields)
	inner := sinkValue(nil)
	inner["choice"] = map[string]any{"test.Color": "RED"}
	b := mustMarshal(t, kitchenSink, sinkValue(map[string]any{"test.Sink": inner}))
	var r agg.Reading
	if err := d.Decode(b, &r); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := agg.Reading{Key: -77, TimeMs: 1_764_000_000_999, Status: 2,
		Values: [agg.MaxMeasures]float64{21.5, 0.25, -3, 1 << 40, math.NaN(), 7, math.NaN(), -0.5}}
	if !sameReading(r, want) {
		t.Fatalf("Decode = %+v, want %+v", r, want)
	}
	checkAgainstHamba(t, d, kitchenSink, sinkFields, b)
}

// sameReading compares readings treating NaN as equal to NaN.
func sameReading(a, b agg.Reading) bool {
	if a.Key != b.Key || a.TimeMs != b.TimeMs || a.Status != b.Status {
		return false
	}
	for i := range a.Values {
		x, y := a.Values[i], b.Values[i]
		if x != y && !(math.IsNaN(x) && math.IsNaN(y)) {
			return false
		}
	}
	return true
}

// expectFromMap computes the Reading from hamba/avro's generic decode: the independent decoder.
func expectFromMap(t testing.TB, schema avro.Schema, f Fields, m map[string]any) agg.Reading {
	t.Helper()
	num := func(name string) float64 {
		switch v := m[name].(type) {
		case nil:
			return math.NaN()
		case int:
			return float64(v)
		case int32:
			return float64(v)
		case int64:
			return float64(v)
		case float32:
			return float64(v)
		case float64:
			return v
		}
		t.Fatalf("field %q: unexpected %T", name, m[name])
		return 0
	}
	var r agg.Reading
	r.Key = int64(num(f.Key))
	if v, ok := m[f.Key].(int64); ok { // exact beyond 2^53
		r.Key = v
	}
	r.TimeMs = int64(num(f.Time))
	if v, ok := m[f.Time].(int64); ok {
		r.TimeMs = v
	}
	if f.Status != "" {
		if sym, ok := m[f.Status].(string); ok {
			var fs avro.Schema
			for _, fld := range schema.(*avro.RecordSchema).Fields() {
				if fld.Name() == f.Status {
					fs = resolve(fld.Type())
				}
			}
			r.Status = int32(slices.Index(fs.(*avro.EnumSchema).Symbols(), sym))
		} else {
			r.Status = int32(num(f.Status))
		}
	}
	for i, name := range f.Measures {
		r.Values[i] = num(name)
	}
	return r
}

// checkAgainstHamba decodes b with d and with hamba/avro; when d succeeds, hamba must too and
// agree on every read value.
func checkAgainstHamba(t testing.TB, d *Decoder, schemaText string, f Fields, b []byte) {
	t.Helper()
	var r agg.Reading
	err := d.Decode(b, &r)
	if err != nil {
		var de *Error
		if !errors.As(err, &de) {
			t.Fatalf("Decode error %T %v, want *Error", err, err)
		}
		if !slices.Contains(Reasons(), de.Reason) {
			t.Fatalf("Decode error reason %q not in Reasons()", de.Reason)
		}
		_ = de.Error()
		return
	}
	schema := avro.MustParse(schemaText)
	var m map[string]any
	if herr := avro.Unmarshal(schema, b, &m); herr != nil {
		t.Fatalf("Decode(%x) succeeded with %+v, hamba/avro fails: %v", b, r, herr)
	}
	if want := expectFromMap(t, schema, f, m); !sameReading(r, want) {
		t.Fatalf("Decode(%x) = %+v, hamba/avro reads %+v", b, r, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := mustMarshal(t, schemas.SensorData, sample)
	padded := mustMarshal(t, schemas.SensorDataPadded, samplePadded)
	sink := mustMarshal(t, kitchenSink, sinkValue(nil))
	with := func(b []byte, i int, v ...byte) []byte {
		c := slices.Clone(b)
		return append(c[:i], append(v, c[i+len(v):]...)...)
	}
	for _, tt := range []struct {
		name   string
		schema string
		f      Fields
		b      []byte
		reason string
		field  string
		offset int
		value  int64
	}{
		{"empty", schemas.SensorData, sensorFields, nil, ReasonEmpty, "", 0, 0},
		{"oversized", schemas.SensorData, sensorFields, make([]byte, 4097), ReasonOversized, "", 0, 4096},
		{"truncated in first varint", schemas.SensorData, sensorFields, good[:2], ReasonTruncated, "sensorId", 0, 0},
		{"truncated in double", schemas.SensorData, sensorFields, good[:10], ReasonTruncated, "temperature", 4, 0},
		{"truncated in last varint", schemas.SensorData, sensorFields, good[:40], ReasonTruncated, "timestamp", 37, 0},
		{"truncated in padding string", schemas.SensorDataPadded, sensorFields, padded[:60], ReasonTruncated, "deviceType", 43, 35},
		{"trailing bytes", schemas.SensorData, sensorFields, append(slices.Clone(good), 0), ReasonTrailingBytes, "", 43, 1},
		{"padded record read as SensorData", schemas.SensorData, sensorFields, padded, ReasonTrailingBytes, "", 43, int64(len(padded) - 43)},
		{"int varint overflow", schemas.SensorData, sensorFields, with(good, 0, 0xff, 0xff, 0xff, 0xff, 0x7f), ReasonMalformed, "sensorId", 0, 0x7f},
		{"int varint too long", schemas.SensorData, sensorFields, with(good, 0, 0xff, 0xff, 0xff, 0xff, 0xff), ReasonMalformed, "sensorId", 0, 0xff},
		{"long varint overflow", schemas.SensorData, sensorFields, append(slices.Clone(good[:37]), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02), ReasonMalformed, "timestamp", 37, 2},
		{"negative string length", schemas.SensorDataPadded, sensorFields, with(padded, 43, 0x01), ReasonMalformed, "deviceType", 43, -1},
		{"string longer than payload", schemas.SensorDataPadded, sensorFields, with(padded, 43, 0xfe, 0x0f), ReasonTruncated, "deviceType", 43, 1023},
		{"enum index out of range", kitchenSink, sinkFields, sinkWith(t, "state", 0x06), ReasonMalformed, "state", -1, 3},
		{"negative enum index", kitchenSink, sinkFields, sinkWith(t, "color", 0x01), ReasonMalformed, "color", -1, -1},
		{"bad boolean", kitchenSink, sinkFields, sinkWith(t, "flag", 0x02), ReasonMalformed, "flag", -1, 2},
		{"bad union index", kitchenSink, sinkFields, sinkWith(t, "next", 0x04), ReasonMalformed, "next", -1, 2},
		{"bad nullable measure index", kitchenSink, sinkFields, sinkWith(t, "temp", 0x04), ReasonMalformed, "temp", -1, 2},
		{"negative block size", kitchenSink, sinkFields, sinkWith(t, "tags", 0x01, 0x01), ReasonMalformed, "tags", -1, -1},
		{"block size mismatch", kitchenSink, sinkFields, sinkWith(t, "points", 0x01, 0x0e, 0x00, 0, 0, 0, 0, 0, 0, 0, 0), ReasonMalformed, "points", -1, 7},
		{"array count beyond payload", kitchenSink, sinkFields, sinkWith(t, "tags", 0xfe, 0xff, 0x0f), ReasonTruncated, "tags", -1, 131071},
		{"kitchen sink truncated", kitchenSink, sinkFields, sink[:len(sink)-1], ReasonTruncated, "optD", len(sink) - 8, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := mustDecoder(t, tt.schema, tt.f)
			var r agg.Reading
			err := d.Decode(tt.b, &r)
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("Decode error = %v, want *Error", err)
			}
			if de.Reason != tt.reason || de.Field != tt.field || de.Value != tt.value ||
				(tt.offset >= 0 && de.Offset != tt.offset) {
				t.Fatalf("Decode error = %+v, want reason %q field %q offset %d value %d",
					*de, tt.reason, tt.field, tt.offset, tt.value)
			}
			if msg := de.Error(); !strings.Contains(msg, tt.reason) || !strings.Contains(msg, tt.field) {
				t.Fatalf("Error() = %q, want reason and field named", msg)
			}
		})
	}
}

// sinkWith encodes the kitchen sink with field name's encoding replaced by v, followed by the
// rest of the record encoded from the default value.
func sinkWith(t testing.TB, name string, v ...byte) []byte {
	t.Helper()
	schema := avro.MustParse(kitchenSink).(*avro.RecordSchema)
	val := sinkValue(nil)
	var b []byte
	for _, fld := range schema.Fields() {
		if fld.Name() == name {
			b = append(b, v...)
			continue
		}
		enc, err := avro.Marshal(fld.Type(), val[fld.Name()])
		if err != nil {
			t.Fatalf("marshal field %q: %v", fld.Name(), err)
		}
		b = append(b, enc...)
	}
	return b
}

func TestNewErrors(t *testing.T) {
	withField := func(typ string) string {
		return `{"type": "record", "name": "R", "fields": [
			{"name": "k", "type": "int"}, {"name": "t", "type": "long"}, {"name": "x", "type": ` + typ + `}]}`
	}
	base := Fields{Key: "k", Time: "t"}
	for _, tt := range []struct {
		name   string
		schema string
		f      Fields
		err    error
		want   string // in the message
	}{
		{"not a record", `"long"`, base, ErrNotRecord, "long"},
		{"array schema", `{"type": "array", "items": "int"}`, base, ErrNotRecord, "array"},
		{"missing key", schemas.SensorData, Fields{Key: "deviceId", Time: "timestamp"}, ErrMissingField, `"deviceId"`},
		{"empty key", schemas.SensorData, Fields{Time: "timestamp"}, ErrMissingField, "key field"},
		{"missing measure", schemas.SensorData, Fields{Key: "sensorId", Time: "timestamp", Measures: []string{"co2"}}, ErrMissingField, `"co2"`},
		{"missing status", schemas.SensorData, Fields{Key: "sensorId", Time: "timestamp", Status: "state"}, ErrMissingField, `"state"`},
		{"too many measures", schemas.SensorData, Fields{Key: "sensorId", Time: "timestamp", Measures: make([]string, 9)}, ErrTooManyMeasures, "9"},
		{"duplicate", schemas.SensorData, Fields{Key: "sensorId", Time: "timestamp", Measures: []string{"sensorId"}}, ErrDuplicateField, `"sensorId"`},
		{"key is double", schemas.SensorData, Fields{Key: "temperature", Time: "timestamp"}, ErrFieldType, `"temperature"`},
		{"key is string", withField(`"string"`), Fields{Key: "x", Time: "t"}, ErrFieldType, `"x"`},
		{"time is double", schemas.SensorData, Fields{Key: "sensorId", Time: "humidity"}, ErrFieldType, `"humidity"`},
		{"time in micros", withField(`{"type": "long", "logicalType": "timestamp-micros"}`), Fields{Key: "k", Time: "x"}, ErrFieldType, "timestamp-micros"},
		{"time is date", withField(`{"type": "int", "logicalType": "date"}`), Fields{Key: "k", Time: "x"}, ErrFieldType, "date"},
		{"status is string", withField(`"string"`), Fields{Key: "k", Time: "t", Status: "x"}, ErrFieldType, `"x"`},
		{"status is double", schemas.SensorData, Fields{Key: "sensorId", Time: "timestamp", Status: "pressure"}, ErrFieldType, `"pressure"`},
		{"measure is string", withField(`"string"`), Fields{Key: "k", Time: "t", Measures: []string{"x"}}, ErrFieldType, `"x"`},
		{"measure is boolean", withField(`"boolean"`), Fields{Key: "k", Time: "t", Measures: []string{"x"}}, ErrFieldType, "boolean"},
		{"measure union without null", withField(`["int", "double"]`), Fields{Key: "k", Time: "t", Measures: []string{"x"}}, ErrFieldType, `"x"`},
		{"measure union of three", withField(`["null", "int", "double"]`), Fields{Key: "k", Time: "t", Measures: []string{"x"}}, ErrFieldType, `"x"`},
		{"measure union with string", withField(`["null", "string"]`), Fields{Key: "k", Time: "t", Measures: []string{"x"}}, ErrFieldType, `"x"`},
		{"measure is record", withField(`{"type": "record", "name": "In", "fields": []}`), Fields{Key: "k", Time: "t", Measures: []string{"x"}}, ErrFieldType, `"x"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			schema, err := avro.Parse(tt.schema)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			d, err := New(schema, tt.f, 0)
			if !errors.Is(err, tt.err) {
				t.Fatalf("New error = %v, want %v", err, tt.err)
			}
			if d != nil {
				t.Fatal("New returned a Decoder with an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error %q does not name %s", err, tt.want)
			}
		})
	}
}

func TestNewAccepts(t *testing.T) {
	for _, tt := range []struct {
		key, time, status, measure string
	}{
		{`"int"`, `"long"`, `"int"`, `"double"`},
		{`"long"`, `{"type": "long", "logicalType": "timestamp-millis"}`, `"long"`, `"float"`},
		{`"long"`, `{"type": "long", "logicalType": "local-timestamp-millis"}`, `{"type": "enum", "name": "S", "symbols": ["A"]}`, `"int"`},
		{`"int"`, `"int"`, `"int"`, `"long"`},
		{`"int"`, `"long"`, `"int"`, `["null", "double"]`},
		{`"int"`, `"long"`, `"int"`, `["long", "null"]`},
	} {
		schema := fmt.Sprintf(`{"type": "record", "name": "R", "fields": [
			{"name": "k", "type": %s}, {"name": "t", "type": %s}, {"name": "s", "type": %s}, {"name": "m", "type": %s}]}`,
			tt.key, tt.time, tt.status, tt.measure)
		if _, err := New(avro.MustParse(schema), Fields{Key: "k", Time: "t", Status: "s", Measures: []string{"m"}}, 0); err != nil {
			t.Errorf("New(%s): %v", schema, err)
		}
	}
}

func TestReasons(t *testing.T) {
	got := Reasons()
	want := []string{"empty", "oversized", "truncated", "malformed", "trailing_bytes"}
	if !slices.Equal(got, want) {
		t.Fatalf("Reasons() = %q, want %q", got, want)
	}
}

// TestDecodeNoAllocs checks that Decode allocates nothing, failing or not.
func TestDecodeNoAllocs(t *testing.T) {
	d := mustDecoder(t, schemas.SensorData, sensorFields)
	good := mustMarshal(t, schemas.SensorData, sample)
	var r agg.Reading
	bs := [][]byte{good, good[:20], append(slices.Clone(good), 1), nil}
	for _, b := range bs {
		if n := testing.AllocsPerRun(100, func() { _ = d.Decode(b, &r) }); n != 0 {
			t.Errorf("Decode(%d bytes) allocates %v times", len(b), n)
		}
	}
	rs, ok := make([]agg.Reading, len(bs)), make([]bool, len(bs))
	if n := testing.AllocsPerRun(100, func() { d.DecodeBatch(bs, rs, ok) }); n != 0 {
		t.Errorf("DecodeBatch allocates %v times", n)
	}
}
