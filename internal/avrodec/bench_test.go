package avrodec

import (
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/pipelined/pipelined/agg"
	"github.com/pipelined/pipelined/internal/loadgen"
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

// BenchmarkHambaReader is the same work done with hamba/avro's Reader, for comparison: the
// field-by-field calls the hand loop in Decode replaces.
func BenchmarkHambaReader(b *testing.B) {
	msg := mustMarshal(b, schemas.SensorData, sample)
	rd := avro.NewReader(nil, 0)
	var r agg.Reading
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(msg)
		r.Key = int64(rd.ReadInt())
		rd.SkipInt()
		for i := range 4 {
			r.Values[i] = rd.ReadDouble()
		}
		r.Status = rd.ReadInt()
		r.TimeMs = rd.ReadLong()
		if rd.Error != nil {
			b.Fatal(rd.Error)
		}
	}
}

// BenchmarkDecodeStream decodes 4,096 of the reference generator's records in turn: the
// varints' lengths vary as a live stream's do (a device id takes one to three bytes), and the
// payloads stay in the cache, so that the time is the decoder's.
func BenchmarkDecodeStream(b *testing.B) {
	d, msgs := mustDecoder(b, schemas.SensorData, sensorFields), streamRecords()
	var r agg.Reading
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := d.Decode(msgs[i&(len(msgs)-1)], &r); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkDecodeStreamBatch is BenchmarkDecodeStream with DecodeBatch, 16 payloads a call as
// the pipeline's worker decodes them (its payloadGroup).
func BenchmarkDecodeStreamBatch(b *testing.B) {
	d, msgs := mustDecoder(b, schemas.SensorData, sensorFields), streamRecords()
	const group = 16
	var rs [group]agg.Reading
	var ok [group]bool
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d.DecodeBatch(msgs[i:i+group], rs[:], ok[:])
		if !ok[group-1] {
			b.Fatalf("%x did not decode", msgs[i+group-1])
		}
		i = (i + group) & (len(msgs) - 1)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*group), "ns/msg")
}

// streamRecords returns 4,096 of the reference generator's records, whose varints' lengths
// vary as a live stream's do.
func streamRecords() [][]byte {
	g := loadgen.New(loadgen.Config{Devices: 100_000, Seed: 9})
	msgs := make([][]byte, 4096)
	for i := range msgs {
		_, msgs[i] = g.Next(1_764_000_000_000+int64(i), nil)
	}
	return msgs
}
