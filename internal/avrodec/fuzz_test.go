package avrodec

import (
	"testing"

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
	})
}
