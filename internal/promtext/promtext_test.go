package promtext

import (
	"math"
	"strings"
	"testing"
)

const exposition = `# HELP x
pipelined_messages_received_total{partition="0"} 3
pipelined_messages_received_total{partition="1"} 4
pipelined_messages_received_total_other 100
pipelined_late_messages_total 2
pipelined_flush_duration_seconds_bucket{le="0.1"} 5
pipelined_flush_duration_seconds_bucket{le="1"} 9
pipelined_flush_duration_seconds_bucket{le="+Inf"} 10
broken line without value x
`

func TestParseSumQuantile(t *testing.T) {
	m, err := Parse(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		got  float64
		want float64
	}{
		{"sum over labels", m.Sum("pipelined_messages_received_total"), 7},
		{"plain", m.Sum("pipelined_late_messages_total"), 2},
		{"absent", m.Sum("nope"), 0},
		{"p50", m.Quantile("pipelined_flush_duration_seconds", 0.5), 0.1},
		{"p90", m.Quantile("pipelined_flush_duration_seconds", 0.9), 1},
		{"p99", m.Quantile("pipelined_flush_duration_seconds", 0.99), math.Inf(1)},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if q := m.Quantile("nope", 0.5); !math.IsNaN(q) {
		t.Errorf("quantile of an absent histogram: got %v, want NaN", q)
	}
}
