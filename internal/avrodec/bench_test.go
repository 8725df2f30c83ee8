package avrodec

import (
	"testing"

	"github.com/pipelined/pipelined/agg"
	"github.com/pipelined/pipelined/internal/schemas"
)

// BenchmarkDecode measures Decode on the reference record and on the ~300-byte padded one.
func BenchmarkDecode(b *testing.B) {
	for _, bb := range []struct {
		name   string
		schema string
		v      any
	}{
		{"SensorData", schemas.SensorData, sample},
		{"SensorDataPadded", schemas.SensorDataPadded, samplePadded},
	} {
		b.Run(bb.name, func(b *testing.B) {
			d := mustDecoder(b, bb.schema, sensorFields)
			msg := mustMarshal(b, bb.schema, bb.v)
			var r agg.Reading
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				if err := d.Decode(msg, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeError measures a failing Decode: failures must not allocate either.
func BenchmarkDecodeError(b *testing.B) {
	d := mustDecoder(b, schemas.SensorData, sensorFields)
	msg := mustMarshal(b, schemas.SensorData, sample)[:20]
	var r agg.Reading
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(msg, &r); err == nil {
			b.Fatal("truncated payload decoded")
		}
	}
}
