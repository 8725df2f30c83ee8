package loadgen

import (
	"bytes"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/pipelined/pipelined/internal/schemas"
)

type padded struct {
	Sample
	Padding
}

// TestNextEncoding checks the hand-written encoder against hamba/avro's Marshal of Last().
func TestNextEncoding(t *testing.T) {
	for _, tt := range []struct {
		name   string
		cfg    Config
		schema string
		minLen int
		maxLen int
	}{
		{"SensorData", Config{Seed: 1}, schemas.SensorData, 36, 44},
		{"SensorDataPadded", Config{Seed: 2, Padded: true}, schemas.SensorDataPadded, 270, 330},
		{"few devices", Config{Seed: 3, Devices: 3}, schemas.SensorData, 36, 44},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := New(tt.cfg)
			if g.Schema() != tt.schema {
				t.Fatal("Schema() is not the schema of the configured variant")
			}
			schema := avro.MustParse(tt.schema)
			now := int64(1_764_000_000_000)
			var buf []byte
			total := 0
			const n = 2000
			for i := range n {
				id, b := g.Next(now+int64(i), buf[:0])
				buf = b
				s := g.Last()
				if id != s.SensorID {
					t.Fatalf("Next returned id %d, Last().SensorID %d", id, s.SensorID)
				}
				if s.Timestamp != now+int64(i) {
					t.Fatalf("timestamp %d, want %d", s.Timestamp, now+int64(i))
				}
				var v any = s
				if tt.cfg.Padded {
					v = padded{s, PaddingFor(id)}
				}
				want, err := avro.Marshal(schema, v)
				if err != nil {
					t.Fatalf("marshal: %v", err)
				}
				if !bytes.Equal(b, want) {
					t.Fatalf("Next encoded %+v as\n%x\nhamba/avro:\n%x", v, b, want)
				}
				total += len(b)
			}
			if avg := total / n; avg < tt.minLen || avg > tt.maxLen {
				t.Errorf("average datum %d bytes, want %d..%d", avg, tt.minLen, tt.maxLen)
			}
		})
	}
}

// TestDistributions checks the reference distributions on 200,000 readings.
func TestDistributions(t *testing.T) {
	const n = 200_000
	g := New(Config{Seed: 7})
	var status [5]int
	var types [9]int
	devices := make(map[int32]bool)
	var sumTemp float64
	for range n {
		g.Next(0, nil)
		s := g.Last()
		if s.SensorID < 0 || s.SensorID >= DefaultDevices {
			t.Fatalf("sensor id %d out of 0..%d", s.SensorID, DefaultDevices-1)
		}
		devices[s.SensorID] = true
		if s.SensorType < 1 || s.SensorType > 8 {
			t.Fatalf("sensor type %d out of 1..8", s.SensorType)
		}
		types[s.SensorType]++
		if s.Status < 1 || s.Status > 4 {
			t.Fatalf("status %d out of 1..4", s.Status)
		}
		status[s.Status]++
		for _, r := range []struct {
			name     string
			v        float64
			min, max float64
		}{
			{"temperature", s.Temperature, 10, 40},
			{"humidity", s.Humidity, 20, 80},
			{"pressure", s.Pressure, 980, 1030},
			{"batteryLevel", s.BatteryLevel, 20, 100},
		} {
			if r.v < r.min || r.v >= r.max {
				t.Fatalf("%s %v out of [%v, %v)", r.name, r.v, r.min, r.max)
			}
		}
		sumTemp += s.Temperature
	}
	// Binomial standard deviations at n = 200,000 are under 0.1%; these bounds are 5 or more.
	within := func(name string, got int, p, tol float64) {
		if f := float64(got) / n; f < p-tol || f > p+tol {
			t.Errorf("%s: fraction %.4f, want %.3f±%.3f", name, f, p, tol)
		}
	}
	within("status 1", status[1], 0.85, 0.005)
	for s := 2; s <= 4; s++ {
		within("status "+string(rune('0'+s)), status[s], 0.05, 0.005)
	}
	for ty := 1; ty <= 8; ty++ {
		within("sensor type "+string(rune('0'+ty)), types[ty], 0.125, 0.005)
	}
	if mean := sumTemp / n; mean < 24.8 || mean > 25.2 {
		t.Errorf("mean temperature %.3f, want 25±0.2", mean)
	}
	// 200,000 uniform draws from 100,000 devices hit 1-e^-2 = 86.5% of them.
	if got := float64(len(devices)) / DefaultDevices; got < 0.86 || got > 0.87 {
		t.Errorf("%.3f of devices seen, want 0.865", got)
	}
}

func TestDeterministic(t *testing.T) {
	run := func(cfg Config) []byte {
		g := New(cfg)
		var out []byte
		for i := range 100 {
			_, out = g.Next(int64(i), out)
		}
		return out
	}
	a, b := run(Config{Seed: 5, Padded: true}), run(Config{Seed: 5, Padded: true})
	if !bytes.Equal(a, b) {
		t.Error("the same seed gave different messages")
	}
	if c := run(Config{Seed: 6, Padded: true}); bytes.Equal(a, c) {
		t.Error("different seeds gave the same messages")
	}
	if p17 := PaddingFor(17); p17 != PaddingFor(17) || p17 == PaddingFor(18) {
		t.Error("padding is not a function of the device id alone")
	}
}

func TestNextNoAllocs(t *testing.T) {
	for _, padded := range []bool{false, true} {
		g := New(Config{Padded: padded, Devices: 10})
		buf := make([]byte, 0, 512)
		for range 1000 { // every device's padding made
			_, buf = g.Next(1, buf[:0])
		}
		if n := testing.AllocsPerRun(1000, func() { _, buf = g.Next(1, buf[:0]) }); n != 0 {
			t.Errorf("Next(padded=%v) allocates %v times", padded, n)
		}
	}
}

func BenchmarkNext(b *testing.B) {
	for _, padded := range []bool{false, true} {
		name := "SensorData"
		if padded {
			name = "SensorDataPadded"
		}
		b.Run(name, func(b *testing.B) {
			g := New(Config{Padded: padded})
			buf := make([]byte, 0, 512)
			b.ReportAllocs()
			for b.Loop() {
				_, buf = g.Next(1, buf[:0])
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}
