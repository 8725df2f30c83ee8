package schemas

import (
	"os"
	"testing"

	"github.com/hamba/avro/v2"
)

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		name   string
		schema string
		fields int
	}{
		{"SensorData", SensorData, 8},
		{"SensorDataPadded", SensorDataPadded, 14},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := avro.Parse(tt.schema)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			rec, ok := s.(*avro.RecordSchema)
			if !ok {
				t.Fatalf("schema type %s, want record", s.Type())
			}
			if got := len(rec.Fields()); got != tt.fields {
				t.Fatalf("%d fields, want %d", got, tt.fields)
			}
		})
	}
}

// TestReference checks SensorData.avsc is the reference schema unchanged.
func TestReference(t *testing.T) {
	ref, err := os.ReadFile("/work/shared/reference/SensorData.avsc")
	if err != nil {
		t.Skipf("reference schema not available: %v", err)
	}
	if string(ref) != SensorData {
		t.Fatal("SensorData.avsc differs from the reference schema")
	}
}

// TestPaddedPrefix checks the padded schema starts with the reference fields, in order and with
// the same types, so that a reader of the reference fields can read either.
func TestPaddedPrefix(t *testing.T) {
	base := avro.MustParse(SensorData).(*avro.RecordSchema)
	padded := avro.MustParse(SensorDataPadded).(*avro.RecordSchema)
	for i, f := range base.Fields() {
		p := padded.Fields()[i]
		if p.Name() != f.Name() || p.Type().String() != f.Type().String() {
			t.Errorf("padded field %d = %s %s, want %s %s", i, p.Name(), p.Type(), f.Name(), f.Type())
		}
	}
}
