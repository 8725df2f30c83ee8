package avrodec

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/pipelined/pipelined/agg"

	"github.com/pipelined/pipelined/internal/schemas"
)

// fuzzSchemas are the writer schemas FuzzDecode decodes with: the shipped ones, and one with a
// field of every Avro type.
var fuzzSchemas = []struct {
	schema string
	fields Fields
}{
	{schemas.SensorData, sensorFields},
	{schemas.SensorDataPadded, sensorFields},
	{kitchenSink, sinkFields},
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
		for _, b := range [][]byte{enc, append(enc, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80)} {
			if got, j := uvarint(b, 0); got != v || j != len(enc) {
				t.Fatalf("uvarint(%x) = %d, %d; want %d, %d", b, got, j, v, len(enc))
			}
			if _, j := uvarint(enc[:len(enc)-1], 0); j != -1 {
				t.Fatalf("uvarint(%x) of a truncated varint ends at %d, want -1", enc[:len(enc)-1], j)
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
