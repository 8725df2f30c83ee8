package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want float64
	}{
		{[]float64{0.9}, 0.9},
		{[]float64{1.5, 0.5}, 1},
		{[]float64{0.96, 0.84, 0.93}, 0.93},
		{[]float64{1, 4, 2, 3}, 2.5},
	} {
		if got := median(c.xs); got != c.want {
			t.Errorf("median(%v): got %v, want %v", c.xs, got, c.want)
		}
	}
}

// The median line compares each pipelined round with the bare round of the same record and
// number, whichever drained first: by rate, by messages per CPU-second of the client, and with
// the harness's CPU added.
func TestTableMedians(t *testing.T) {
	res := func(record, client string, round int, drainS, cpu, harness float64) drainResult {
		return drainResult{Record: record, Client: client, Round: round, Messages: 1000,
			Drain: time.Duration(drainS * float64(time.Second)), CPU: cpu, Harness: harness, P99: math.NaN()}
	}
	rs := []drainResult{
		res("41 B", "bare", 1, 10, 20, 5),
		res("41 B", "pipelined", 1, 12.5, 25, 10), // rate 0.8, CPU 0.8, machine 25/35
		res("41 B", "pipelined", 2, 10, 18, 8),    // 1.0, 20/18, 24/26: drained before its bare round
		res("41 B", "bare", 2, 10, 20, 4),
		res("41 B", "bare", 3, 9, 18, 2),
		res("41 B", "pipelined", 3, 10, 18, 5), // 0.9, 1.0, 20/23
		res("~300 B", "bare", 1, 10, 20, 5),
		res("~300 B", "pipelined", 1, 20, 30, 11), // 0.5, 20/30, 25/41
	}
	got := table(options{thpNote: "the host's"}, rs, time.Now(), "0 0 0")
	for _, want := range []string{
		"| 41 B | pipelined | 1 | 1000 | 12.50 | 80 | 40 |",
		"| 41 B | pipelined | 3 | 1000 | 10.00 | 100 | 56 |",
		"| 0.80 |\n| 41 B | pipelined | 2 |",                      // each round's rate ratio ends its pipelined row
		"| 1.00 |\n| 41 B | bare | 2 | 1000 | 10.00 | 100 | 50 |", // ... also before its bare row
		"| 0.90 |\n| ~300 B | bare | 1 |",
		"over the rounds (the host is shared, so single rounds scatter): 41 B **0.90**, ~300 B **0.50**.",
		"the client process's alone: 41 B 1.00, ~300 B 0.67;",
		"(the broker, and for pipelined the local ClickHouse): 41 B 0.87, ~300 B 0.61.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}

// Odd rounds drain with the bare client first, even ones with pipelined first.
func TestRoundOrder(t *testing.T) {
	for r, want := range map[int]string{1: "bare pipelined", 2: "pipelined bare", 3: "bare pipelined", 4: "pipelined bare"} {
		if got := strings.Join(roundOrder(r), " "); got != want {
			t.Errorf("round %d: got %s, want %s", r, got, want)
		}
	}
}
