package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// defaultHotPathCount is -hotpath-count's default: runs of each pipeline hot-path benchmark.
const defaultHotPathCount = 5

// benchResult is one Go benchmark's runs as `go test -bench` printed them.
type benchResult struct {
	Name  string               // without the -GOMAXPROCS suffix
	Units []string             // in the order of its first line: ns/op, then the rest
	Runs  []map[string]float64 // one a line: unit -> value
}

// hotPath is what the hot-path benchmarks printed and the commands that ran them.
type hotPath struct {
	count   int      // runs of each pipeline benchmark
	cmds    []string // as a shell would take them
	results []benchResult
}

// hotPathCommands are the go test commands behind the hot-path table: the pipeline's
// benchmarks count times each, and BenchmarkWindowMemory once (a heap measurement that does not
// vary between runs). extra goes before the package (tests pass -benchtime=1x).
func hotPathCommands(count int, extra []string) [][]string {
	return [][]string{
		slices.Concat([]string{"go", "test", "-run", "^$", "-bench", "HotPath|EncodeRows", "-benchmem", "-count=" + strconv.Itoa(count)}, extra, []string{"./pipeline"}),
		slices.Concat([]string{"go", "test", "-run", "^$", "-bench", "WindowMemory", "-benchmem", "-count=1"}, extra, []string{"./agg"}),
	}
}

// runHotPath runs the hot-path benchmarks in the module that holds the working directory,
// logging their output as it comes, and returns what they printed; nil when count is 0.
func runHotPath(ctx context.Context, count int, extra []string, logf func(string, ...any)) (*hotPath, error) {
	if count == 0 {
		return nil, nil
	}
	dir, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	hp := &hotPath{count: count}
	for _, args := range hotPathCommands(count, extra) {
		line := shellJoin(args)
		logf("hot path: %s", line)
		t0 := time.Now()
		var out bytes.Buffer
		lw := &lineLogger{logf: logf}
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Dir = dir
		cmd.Stdout = io.MultiWriter(&out, lw)
		cmd.Stderr = cmd.Stdout
		err := cmd.Run()
		lw.flush()
		if err != nil {
			return nil, fmt.Errorf("%s (in %s): %w; its output:\n%s", line, dir, err, excerpt(out.String(), 5, 30))
		}
		rs := parseBench(out.String())
		if len(rs) == 0 {
			return nil, fmt.Errorf("%s (in %s) printed no benchmark results; its output:\n%s", line, dir, excerpt(out.String(), 5, 30))
		}
		logf("hot path: %d benchmarks in %s", len(rs), time.Since(t0).Round(time.Second))
		hp.cmds = append(hp.cmds, line)
		hp.results = append(hp.results, rs...)
	}
	return hp, nil
}

// moduleRoot is the directory of the main module's go.mod, as go env GOMOD names it.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == "/dev/null" {
		return "", fmt.Errorf("go env GOMOD: %q: not in a module", mod)
	}
	return filepath.Dir(mod), nil
}

// lineLogger passes what is written to it to logf a line at a time. go test prints a
// benchmark's name before it runs and its results after, so a line waits for its newline.
type lineLogger struct {
	logf func(string, ...any)
	buf  []byte
}

func (w *lineLogger) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.log(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
}

func (w *lineLogger) flush() {
	w.log(w.buf)
	w.buf = nil
}

func (w *lineLogger) log(l []byte) {
	if s := strings.TrimRight(string(l), " \t\r"); s != "" {
		w.logf("  %s", s)
	}
}

// excerpt is s's first head lines and last tail lines: go test's output ends in the failure
// and the stack that led to it, but a flag it does not know comes first, before its usage.
func excerpt(s string, head, tail int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) <= head+tail+1 {
		return strings.Join(lines, "\n")
	}
	cut := len(lines) - head - tail
	return strings.Join(slices.Concat(lines[:head], []string{fmt.Sprintf("[%d lines left out]", cut)}, lines[len(lines)-tail:]), "\n")
}

// shellJoin writes args as a shell command, quoting the ones a shell would take apart.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = a
		if a == "" || strings.ContainsFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=,:", r))
		}) {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

// parseBench collects the benchmark lines of go test's output, by name in the order of their
// first line; every other line is passed over.
func parseBench(out string) []benchResult {
	var rs []benchResult
	at := map[string]int{}
	for _, l := range strings.Split(out, "\n") {
		name, units, run, ok := parseBenchLine(l)
		if !ok {
			continue
		}
		i, seen := at[name]
		if !seen {
			i = len(rs)
			at[name] = i
			rs = append(rs, benchResult{Name: name})
		}
		for _, u := range units {
			if !slices.Contains(rs[i].Units, u) {
				rs[i].Units = append(rs[i].Units, u)
			}
		}
		rs[i].Runs = append(rs[i].Runs, run)
	}
	return rs
}

// parseBenchLine reads a line in Go's benchmark format: the name, the iterations, then pairs
// of a value and its unit. A trailing -N on the name (GOMAXPROCS, which go test leaves off
// when it is 1) is dropped.
func parseBenchLine(l string) (name string, units []string, run map[string]float64, ok bool) {
	f := strings.Fields(l)
	if len(f) < 4 || len(f)%2 != 0 || !strings.HasPrefix(f[0], "Benchmark") {
		return "", nil, nil, false
	}
	if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
		return "", nil, nil, false
	}
	run = make(map[string]float64, len(f)/2-1)
	for i := 2; i < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return "", nil, nil, false
		}
		run[f[i+1]] = v
		units = append(units, f[i+1])
	}
	name = f[0]
	if i := strings.LastIndexByte(name, '-'); i >= 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			name = name[:i]
		}
	}
	return name, units, run, true
}

// values are unit's values over r's runs (the runs that reported it).
func (r benchResult) values(unit string) []float64 {
	var vs []float64
	for _, run := range r.Runs {
		if v, ok := run[unit]; ok {
			vs = append(vs, v)
		}
	}
	return vs
}

// Units the table gives columns of their own; any other is listed under "other metrics".
const (
	nsPerOp     = "ns/op"
	bytesPerOp  = "B/op"
	allocsPerOp = "allocs/op"
	// bytesPerDeviceWindow is BenchmarkWindowMemory's live heap per device row (agg/window_test.go).
	bytesPerDeviceWindow = "bytes/device-window"
)

// hotPathTarget is the target a benchmark is held to and whether r's runs meet it: time on
// the median, allocations on the most any run made. A unit that no run reported does not meet it.
func hotPathTarget(r benchResult) (target, verdict string) {
	under := func(base string) bool { return r.Name == base || strings.HasPrefix(r.Name, base+"/") }
	atMost := func(unit string, stat func([]float64) float64, limit float64) bool {
		vs := r.values(unit)
		return len(vs) > 0 && stat(vs) <= limit
	}
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**not met**"
	}
	switch {
	case under("BenchmarkHotPath"):
		return "≤ 50 ns/op, 0 allocs/op", met(atMost(nsPerOp, median, 50) && atMost(allocsPerOp, slices.Max, 0))
	case under("BenchmarkEncodeRows"):
		return "0 allocs/op", met(atMost(allocsPerOp, slices.Max, 0))
	case under("BenchmarkWindowMemory"):
		return "≤ 150 B per device-window", met(atMost(bytesPerDeviceWindow, median, 150))
	}
	return "-", "-"
}

// hotPathTable renders the hot-path benchmarks as Markdown.
func hotPathTable(hp *hotPath) string {
	var sb strings.Builder
	cmds := make([]string, len(hp.cmds))
	for i, c := range hp.cmds {
		cmds[i] = "`" + c + "`"
	}
	runs := "runs"
	if hp.count == 1 {
		runs = "run"
	}
	fmt.Fprintf(&sb, "\n**Hot path** (Go benchmarks, -benchmem, %d %s each; BenchmarkWindowMemory, a heap measurement, once), under the same transparent huge pages mode, before the drains: %s.\n\n",
		hp.count, runs, strings.Join(cmds, " and "))
	sb.WriteString("| benchmark | runs | ns/op min–max | ns/op median | B/op | allocs/op | other metrics (median) | target | verdict |\n")
	sb.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |\n")
	for _, r := range hp.results {
		span, mid := "-", "-"
		if ns := r.values(nsPerOp); len(ns) > 0 {
			lo, hi := slices.Min(ns), slices.Max(ns)
			span = num(lo)
			if hi != lo {
				span += "–" + num(hi)
			}
			mid = num(median(ns))
		}
		most := func(unit string) string {
			if vs := r.values(unit); len(vs) > 0 {
				return num(slices.Max(vs))
			}
			return "-"
		}
		var other []string
		for _, u := range r.Units {
			if u != nsPerOp && u != bytesPerOp && u != allocsPerOp {
				other = append(other, num(median(r.values(u)))+" "+u)
			}
		}
		target, verdict := hotPathTarget(r)
		fmt.Fprintf(&sb, "| %s | %d | %s | %s | %s | %s | %s | %s | %s |\n",
			r.Name, len(r.Runs), span, mid, most(bytesPerOp), most(allocsPerOp), cmp.Or(strings.Join(other, ", "), "-"), target, verdict)
	}
	sb.WriteString("\nB/op and allocs/op are the most of any run; a target's time is judged on the median ns/op and its allocations on the most.\n")
	return sb.String()
}

// num writes v with at most two decimals and no trailing zeros.
func num(v float64) string {
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}
