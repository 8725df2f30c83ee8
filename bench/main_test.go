package main

import (
	"fmt"
	"math"
	"reflect"
	"slices"
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
	got := table(options{thpNote: "the host's"}, rs, nil, time.Now(), "0 0 0")
	tableHas(t, got,
		"| 41 B | pipelined | 1 | 1000 | 12.50 | 80 | 40 |",
		"| 41 B | pipelined | 3 | 1000 | 10.00 | 100 | 56 |",
		"| 0.80 |\n| 41 B | pipelined | 2 |",                      // each round's rate ratio ends its pipelined row
		"| 1.00 |\n| 41 B | bare | 2 | 1000 | 10.00 | 100 | 50 |", // ... also before its bare row
		"| 0.90 |\n| ~300 B | bare | 1 |",
		"over the rounds (the host is shared, so single rounds scatter): 41 B **0.90**, ~300 B **0.50**.",
		"the client process's alone: 41 B 1.00, ~300 B 0.67;",
		"(the broker, and for pipelined the local ClickHouse): 41 B 0.87, ~300 B 0.61.",
	)
}

// tableHas fails t for each of wants that the rendered table lacks.
func tableHas(t *testing.T, table string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
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

// goTestOutput is go test -bench output in the shape the hot-path commands print: two runs of
// each pipeline benchmark (one of them with an allocation), BenchmarkWindowMemory's custom
// units, a benchmark without the GOMAXPROCS suffix, and lines that are not results.
const goTestOutput = `goos: linux
goarch: amd64
pkg: github.com/pipelined/pipelined/pipeline
cpu: AMD EPYC
BenchmarkHotPath/devices=100000/per-minute=600-2   	19397737	        66.07 ns/op	     99997 open-device-windows	       0 B/op	       0 allocs/op
BenchmarkHotPath/devices=1563/per-minute=600-2     	26000000	        44.10 ns/op	      1563 open-device-windows	       0 B/op	       0 allocs/op
BenchmarkHotPath/devices=100000/per-minute=600-2   	17000000	        70.50 ns/op	    100000 open-device-windows	       0 B/op	       0 allocs/op
BenchmarkHotPath/devices=1563/per-minute=600-2     	25000000	        46.30 ns/op	      1563 open-device-windows	      16 B/op	       1 allocs/op
BenchmarkEncodeRows-2   	44000000	        26.50 ns/op	       0 B/op	       0 allocs/op
BenchmarkHotPath
--- BENCH: BenchmarkHotPath/devices=100000/per-minute=3-2
    bench_test.go:99: 3 windows closed
PASS
ok  	github.com/pipelined/pipelined/pipeline	42.123s
BenchmarkWindowMemory/grown-2   	       1	 951234567 ns/op	       149.3 bytes/device-window	       147.2 sizebytes/device-window	33554432 B/op	   25 allocs/op
BenchmarkWindowMemory/sized   	       1	 812345678 ns/op	       163.8 bytes/device-window	       160.0 sizebytes/device-window	16777216 B/op	   12 allocs/op
BenchmarkDecode/SensorData-2   	90000000	        12.9 ns/op
`

func TestParseBench(t *testing.T) {
	got := parseBench(goTestOutput)
	want := []benchResult{
		{"BenchmarkHotPath/devices=100000/per-minute=600", []string{"ns/op", "open-device-windows", "B/op", "allocs/op"}, []map[string]float64{
			{"ns/op": 66.07, "open-device-windows": 99997, "B/op": 0, "allocs/op": 0},
			{"ns/op": 70.5, "open-device-windows": 100000, "B/op": 0, "allocs/op": 0},
		}},
		{"BenchmarkHotPath/devices=1563/per-minute=600", []string{"ns/op", "open-device-windows", "B/op", "allocs/op"}, []map[string]float64{
			{"ns/op": 44.1, "open-device-windows": 1563, "B/op": 0, "allocs/op": 0},
			{"ns/op": 46.3, "open-device-windows": 1563, "B/op": 16, "allocs/op": 1},
		}},
		{"BenchmarkEncodeRows", []string{"ns/op", "B/op", "allocs/op"}, []map[string]float64{
			{"ns/op": 26.5, "B/op": 0, "allocs/op": 0},
		}},
		{"BenchmarkWindowMemory/grown", []string{"ns/op", "bytes/device-window", "sizebytes/device-window", "B/op", "allocs/op"}, []map[string]float64{
			{"ns/op": 951234567, "bytes/device-window": 149.3, "sizebytes/device-window": 147.2, "B/op": 33554432, "allocs/op": 25},
		}},
		{"BenchmarkWindowMemory/sized", []string{"ns/op", "bytes/device-window", "sizebytes/device-window", "B/op", "allocs/op"}, []map[string]float64{
			{"ns/op": 812345678, "bytes/device-window": 163.8, "sizebytes/device-window": 160, "B/op": 16777216, "allocs/op": 12},
		}},
		{"BenchmarkDecode/SensorData", []string{"ns/op"}, []map[string]float64{{"ns/op": 12.9}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseBench:\ngot  %+v\nwant %+v", got, want)
	}
}

// Each row: ns/op as min–max and median, B/op and allocs/op the most of any run, the other
// units' medians, and the target judged on the median time and the most allocations.
func TestHotPathTable(t *testing.T) {
	hp := &hotPath{count: 2, cmds: []string{"go test -bench 'HotPath|EncodeRows' ./pipeline", "go test -bench WindowMemory ./agg"}, results: parseBench(goTestOutput)}
	got := hotPathTable(hp)
	tableHas(t, got,
		"**Hot path** (Go benchmarks, -benchmem, 2 runs each; ",
		": `go test -bench 'HotPath|EncodeRows' ./pipeline` and `go test -bench WindowMemory ./agg`.\n",
		"| BenchmarkHotPath/devices=100000/per-minute=600 | 2 | 66.07–70.5 | 68.29 | 0 | 0 | 99998.5 open-device-windows | ≤ 50 ns/op, 0 allocs/op | **not met** |\n",
		"| BenchmarkHotPath/devices=1563/per-minute=600 | 2 | 44.1–46.3 | 45.2 | 16 | 1 | 1563 open-device-windows | ≤ 50 ns/op, 0 allocs/op | **not met** |\n", // on the allocation alone
		"| BenchmarkEncodeRows | 1 | 26.5 | 26.5 | 0 | 0 | - | 0 allocs/op | met |\n",
		"| BenchmarkWindowMemory/grown | 1 | 951234567 | 951234567 | 33554432 | 25 | 149.3 bytes/device-window, 147.2 sizebytes/device-window | ≤ 150 B per device-window | met |\n",
		"| BenchmarkWindowMemory/sized | 1 | 812345678 | 812345678 | 16777216 | 12 | 163.8 bytes/device-window, 160 sizebytes/device-window | ≤ 150 B per device-window | **not met** |\n",
		"| BenchmarkDecode/SensorData | 1 | 12.9 | 12.9 | - | - | - | - | - |\n",
	)
}

func TestHotPathTarget(t *testing.T) {
	run := func(name string, runs ...map[string]float64) benchResult { return benchResult{Name: name, Runs: runs} }
	for _, c := range []struct {
		r       benchResult
		verdict string
	}{
		{run("BenchmarkHotPath/devices=1563/per-minute=600", map[string]float64{"ns/op": 43.5, "allocs/op": 0}), "met"},
		{run("BenchmarkHotPath/x", map[string]float64{"ns/op": 50, "allocs/op": 0}), "met"},
		// the median is 49: met, though one run is slower
		{run("BenchmarkHotPath/x", map[string]float64{"ns/op": 48, "allocs/op": 0}, map[string]float64{"ns/op": 49, "allocs/op": 0}, map[string]float64{"ns/op": 80, "allocs/op": 0}), "met"},
		{run("BenchmarkHotPath/x", map[string]float64{"ns/op": 50.01, "allocs/op": 0}), "**not met**"},
		{run("BenchmarkHotPath/x", map[string]float64{"ns/op": 40}), "**not met**"}, // no -benchmem: allocations unknown
		{run("BenchmarkHotPath", map[string]float64{"ns/op": 40, "allocs/op": 0}), "met"},
		{run("BenchmarkEncodeRows", map[string]float64{"ns/op": 400, "allocs/op": 0}), "met"},
		{run("BenchmarkEncodeRows", map[string]float64{"allocs/op": 0}, map[string]float64{"allocs/op": 2}), "**not met**"},
		{run("BenchmarkWindowMemory/sized", map[string]float64{"bytes/device-window": 150}), "met"},
		{run("BenchmarkWindowMemory/grown", map[string]float64{"sizebytes/device-window": 100}), "**not met**"},
		{run("BenchmarkHotPathology", map[string]float64{"ns/op": 40, "allocs/op": 0}), "-"}, // not a HotPath case
	} {
		if _, got := hotPathTarget(c.r); got != c.verdict {
			t.Errorf("%s %v: got %q, want %q", c.r.Name, c.r.Runs, got, c.verdict)
		}
	}
}

// The commands are written as make bench's documentation and RESULTS.md quote them.
func TestHotPathCommands(t *testing.T) {
	var got []string
	for _, args := range hotPathCommands(3, []string{"-benchtime=1x"}) {
		got = append(got, shellJoin(args))
	}
	want := []string{
		"go test -run '^$' -bench 'HotPath|EncodeRows' -benchmem -count=3 -benchtime=1x ./pipeline",
		"go test -run '^$' -bench WindowMemory -benchmem -count=1 -benchtime=1x ./agg",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := shellJoin([]string{"echo", "it's", ""}); got != `echo 'it'\''s' ''` {
		t.Errorf("shellJoin: got %s", got)
	}
}

// A line reaches the log whole, however go test's writes split it.
func TestLineLogger(t *testing.T) {
	var got []string
	w := &lineLogger{logf: func(format string, args ...any) { got = append(got, fmt.Sprintf(format, args...)) }}
	for _, s := range []string{"BenchmarkEncodeRows-2   \t", "44000000\t  26.50 ns/op\n\nPA", "SS\nok"} {
		w.Write([]byte(s))
	}
	w.flush()
	want := []string{"  BenchmarkEncodeRows-2   \t44000000\t  26.50 ns/op", "  PASS", "  ok"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// The real commands, one iteration each, give a row per benchmark with its units; a failing
// go test fails the run and names the command and what it printed.
func TestRunHotPath(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the pipeline and agg benchmarks")
	}
	hp, err := runHotPath(t.Context(), 1, []string{"-benchtime=1x"}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	got := hotPathTable(hp)
	t.Logf("\n%s", got)
	tableHas(t, got,
		"`go test -run '^$' -bench 'HotPath|EncodeRows' -benchmem -count=1 -benchtime=1x ./pipeline` and `go test -run '^$' -bench WindowMemory -benchmem -count=1 -benchtime=1x ./agg`",
		"| BenchmarkHotPath/devices=100000/per-minute=600 | 1 | ",
		"| BenchmarkHotPath/devices=1563/per-minute=600 | 1 | ",
		"| BenchmarkHotPath/devices=100000/per-minute=3 | 1 | ",
		" open-device-windows | ≤ 50 ns/op, 0 allocs/op | ",
		"| BenchmarkEncodeRows | 1 | ",
		"| BenchmarkWindowMemory/grown | 1 | ",
		" bytes/device-window, ",
		" sizebytes/device-window | ≤ 150 B per device-window | ",
	)

	_, err = runHotPath(t.Context(), 1, []string{"-notaflag"}, t.Logf)
	if err == nil || !strings.Contains(err.Error(), "-count=1 -notaflag ./pipeline (in ") || !strings.Contains(err.Error(), "flag provided but not defined: -notaflag") {
		t.Errorf("go test with a flag it does not know: got error %v, want one naming the command and quoting its output", err)
	}
}

func TestExcerpt(t *testing.T) {
	for _, c := range []struct {
		s, want string
	}{
		{"a\nb\nc\nd\n", "a\nb\nc\nd"}, // head + tail + 1 lines: the line left out would take as much room as its note
		{"a\nb\nc\nd\ne\n", "a\n[2 lines left out]\nd\ne"},
		{"", ""},
	} {
		if got := excerpt(c.s, 1, 2); got != c.want {
			t.Errorf("excerpt(%q, 1, 2): got %q, want %q", c.s, got, c.want)
		}
	}
}
