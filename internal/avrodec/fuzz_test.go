package avrodec

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/pipelined/pipelined/agg"

	"github.com/pipelined/pipelined/internal/schemas"
)

// fuzzSchemas are the writer schemas FuzzDecode decodes with: the shipped ones, one with a
// field of every Avro type, and those that take the fast plan down each of its paths.
var fuzzSchemas = []struct {
	schema string
	fields Fields
}{
	{schemas.SensorData, sensorFields},
	{schemas.SensorDataPadded, sensorFields},
	{kitchenSink, sinkFields},
	{varintSchema, varintFields},
	{intSchema, intFields},
	{runSchema, runFields},
	{eightSchema, eightFields},
	{schemas.SensorData, shuffledFields},
	{schemas.SensorData, noStatusFields},
	{refLongSchema, refLongFields},
}

// FuzzDecode checks that Decode never panics, fails only with a known reason, and that whatever
// it accepts hamba/avro accepts too, with the same values.
func FuzzDecode(f *testing.F) {
	inner := sinkValue(nil)
	inner["choice"] = map[string]any{"test.Color": "RED"}
	seeds := [][]byte{
		mustMarshal(f, schemas.SensorData, sample),
		mustMarshal(f, schemas.SensorDataPadded, samplePadded),
		mustMarshal(f, kitchenSink, sinkValue(nil)),
		mustMarshal(f, kitchenSink, sinkValue(map[string]any{"test.Sink": inner})),
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for _, fs := range fastSchemas {
		seeds = append(seeds, mustMarshal(f, fs.schema, fs.value(rng)))
	}
	for which := range fuzzSchemas {
		for _, b := range seeds {
			for _, n := range []int{len(b), len(b) - 1, len(b) / 2, 1} {
				f.Add(uint8(which), b[:n])
			}
		}
	}
	decoders := make([]*Decoder, len(fuzzSchemas))
	for i, s := range fuzzSchemas {
		decoders[i] = mustDecoder(f, s.schema, s.fields)
	}
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		i := int(which) % len(fuzzSchemas)
		checkAgainstHamba(t, decoders[i], fuzzSchemas[i].schema, fuzzSchemas[i].fields, b)
		checkFastCareful(t, decoders[i], b)
	})
}

// FuzzDecodeVarints encodes records of varintSchema from the fuzzer's values, which puts
// varints of every length at every distance from the ends of the payload: Decode must read them
// back, and agree with the careful way on every prefix of the payload and on bytes after it.
func FuzzDecodeVarints(f *testing.F) {
	for _, v := range []struct {
		k, t, s, o int64
		si         int32
		pre, post  string
	}{
		{0, 0, 0, 0, 0, "", ""},
		{42917, 1_764_000_000_123, 1, 3, 3, "", ""},
		{-1, math.MinInt64, math.MaxInt32, math.MaxInt64, math.MinInt32, "abc", "de"},
		{1 << 55, -1 << 62, math.MinInt32, 1 << 20, 1 << 14, strings.Repeat("p", 100), "x"},
		{1, 2, math.MaxInt32 + 1, 4, 5, "", strings.Repeat("q", 7)},
	} {
		f.Add(v.k, v.t, v.s, v.o, v.si, v.pre, v.post)
	}
	d := mustDecoder(f, varintSchema, varintFields)
	schema := avro.MustParse(varintSchema)
	f.Fuzz(func(t *testing.T, k, tm, s, o int64, si int32, pre, post string) {
		if len(pre)+len(post) > 300 {
			return // longer strings add nothing but time
		}
		b, err := avro.Marshal(schema, map[string]any{"pre": pre, "k": k, "si": si, "t": tm, "sl": o, "s": s, "post": post})
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		var r agg.Reading
		err = d.Decode(b, &r)
		var de *Error
		switch {
		case s != int64(int32(s)):
			if !errors.As(err, &de) || de.Reason != ReasonMalformed || de.Field != "s" {
				t.Fatalf("Decode(%x) = %v, want status %d out of range", b, err, s)
			}
		case err != nil:
			t.Fatalf("Decode(%x): %v", b, err)
		case r != (agg.Reading{Key: k, TimeMs: tm, Status: int32(s)}):
			t.Fatalf("Decode(%x) = %+v, want key %d time %d status %d", b, r, k, tm, s)
		}
		for n := range len(b) + 1 {
			checkFastCareful(t, d, b[:n:n])
		}
		c := append(slices.Clone(b), 0)
		checkFastCareful(t, d, c[:len(c):len(c)])
	})
}

// checkFastCareful checks the fast plan and the careful one agree on b: same values, or the same
// error.
func checkFastCareful(t *testing.T, d *Decoder, b []byte) {
	t.Helper()
	var fast, careful agg.Reading
	var fastErr Error
	err := d.Decode(b, &fast)
	if err != nil {
		fastErr = *err.(*Error)
	}
	cerr := d.decodeCareful(b, &careful)
	switch {
	case (err == nil) != (cerr == nil):
		t.Fatalf("Decode(%x) = %v, careful decode = %v", b, err, cerr)
	case err != nil && fastErr != *cerr.(*Error):
		t.Fatalf("Decode(%x) = %+v, careful decode = %+v", b, fastErr, *cerr.(*Error))
	case err == nil && !sameReading(fast, careful):
		t.Fatalf("Decode(%x) = %+v, careful decode = %+v", b, fast, careful)
	}
	checkBatch(t, d, b, err == nil, fast)
}

// checkBatch checks that DecodeBatch agrees with Decode, whose answer for b was ok and r, on b
// twice, an empty payload (which never decodes) and b again: a batch goes on after a payload
// it decoded and after one it did not. The readings and oks start out wrong, which
// DecodeBatch must replace.
func checkBatch(t *testing.T, d *Decoder, b []byte, ok bool, r agg.Reading) {
	t.Helper()
	bs := [][]byte{b, b, {}, b}
	rs, oks := make([]agg.Reading, len(bs)), make([]bool, len(bs))
	for k := range rs {
		rs[k] = agg.Reading{Key: -1, TimeMs: -1, Status: -1, Values: [agg.MaxMeasures]float64{-1, -1, -1, -1, -1, -1, -1, -1}}
		oks[k] = !ok || k == 2
	}
	d.DecodeBatch(bs, rs, oks)
	for k := range bs {
		want := ok && k != 2
		if oks[k] != want || want && !sameReading(rs[k], r) {
			t.Fatalf("DecodeBatch of %x at %d: %v, %+v; Decode: %v, %+v", b, k, oks[k], rs[k], want, r)
		}
	}
}

// TestUvarint checks the fast varint reader against encoding/binary on values of every length,
// whole, truncated, and with room to spare.
func TestUvarint(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	values := []uint64{0, 1, 127, 128, 1<<14 - 1, 1 << 14, 1<<63 - 1, 1 << 63, 1<<64 - 1}
	for range 10000 {
		values = append(values, rng.Uint64()>>rng.IntN(64))
	}
	for _, v := range values {
		enc := binary.AppendUvarint(nil, v)
		// After 0 to 8 bytes of padding, so that the varint ends at every distance from the
		// start of a word loaded at the end of the payload.
		for pad := range 9 {
			at := append(make([]byte, pad), enc...)
			for _, b := range [][]byte{at, append(at, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80)} {
				if got, j := uvarint(b, pad); got != v || j != len(at) {
					t.Fatalf("uvarint(%x, %d) = %d, %d; want %d, %d", b, pad, got, j, v, len(at))
				}
			}
			if _, j := uvarint(at[:len(at)-1], pad); j != -1 {
				t.Fatalf("uvarint(%x, %d) of a truncated varint ends at %d, want -1", at[:len(at)-1], pad, j)
			}
		}
	}
	for _, b := range [][]byte{
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},       // 65 bits
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, // 11 bytes
	} {
		if _, j := uvarint(b, 0); j != -1 {
			t.Errorf("uvarint(%x) ends at %d, want -1 (overflow)", b, j)
		}
		if _, n := binary.Uvarint(b); n >= 0 {
			t.Errorf("binary.Uvarint(%x) = %d, want overflow", b, n)
		}
	}
}
