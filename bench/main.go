// Command bench is pipelined's backlog benchmark (`make bench`): it loads the local Pulsar with
// a backlog in the reference's shape (64 partitions, 100,000 devices, keyed by device, batches
// as the Go producer makes them), cached on disk so loading is not the measurement, then drains
// it alternately with the bare pulsar-client-go consumer (the client library's ceiling) and with
// pipelined (the real binary) into the local ClickHouse, and writes a table into
// bench/RESULTS.md between its markers. Before the drains, under the same transparent huge pages
// mode, it runs the hot-path Go benchmarks (hotpath.go), whose table follows the drains'.
//
//	go run ./bench -pipelined ./pipelined
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/pipelined/pipelined/internal/chlocal"
	"github.com/pipelined/pipelined/internal/pulsarlocal"
	"github.com/pipelined/pipelined/internal/thp"
	"github.com/pipelined/pipelined/pipeline"
)

const topicName = "persistent://public/default/iot-sensor-data"

func main() {
	if len(os.Args) == 3 && os.Args[1] == "-bare" {
		if err := runBare(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "bench -bare:", err)
			os.Exit(1)
		}
		return
	}
	code := 0
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		code = 1
	}
	os.Exit(code) // chDB's engine is not shut down by exit handlers (see chlocal)
}

type options struct {
	pipelined   string
	messages    int64
	padded      int64
	rounds      int
	devices     int
	partitions  int
	rate        int64
	results     string
	queue       int
	channel     int
	conns       int
	env         string
	only        string
	timeout     time.Duration
	profile     string
	brokerProf  string
	harnessProf string
	plProf      string
	thp         string // the transparent huge pages mode for the run; empty: the host's
	thpNote     string // what the table says about it
	chDir       string // where the local ClickHouse's data directory goes; empty: chlocal's default, on disk
	hotCount    int    // runs of each pipeline hot-path benchmark (BenchmarkWindowMemory runs once); 0: none
}

func run() error {
	var o options
	flag.StringVar(&o.pipelined, "pipelined", "", "the pipelined binary (required)")
	flag.Int64Var(&o.messages, "n", 20_000_000, "messages in the 41-byte backlog")
	flag.Int64Var(&o.padded, "padded-n", 20_000_000, "messages in the ~300-byte backlog; 0 skips it")
	flag.IntVar(&o.rounds, "rounds", 5, "rounds; each drains the backlog with both clients, bare first in odd rounds and pipelined first in even ones")
	flag.IntVar(&o.devices, "devices", 100_000, "devices")
	flag.IntVar(&o.partitions, "partitions", 64, "topic partitions")
	flag.Int64Var(&o.rate, "rate", 1_000_000, "messages per second of event time when the backlog was produced (4 producers)")
	flag.StringVar(&o.results, "results", "bench/RESULTS.md", "file whose table (between the bench markers) is rewritten; empty prints only")
	def := pipeline.DefaultConfig().Pulsar // the product's defaults unless told otherwise
	flag.IntVar(&o.queue, "receiver-queue", def.ReceiverQueueSize, "receiver queue per partition consumer (both clients)")
	flag.IntVar(&o.channel, "message-channel", def.MessageChannelSize, "message channel per partition consumer (both clients)")
	flag.IntVar(&o.conns, "connections", def.ConnectionsPerBroker, "MaxConnectionsPerBroker (both clients)")
	flag.StringVar(&o.env, "env", "", "extra environment for both clients, space separated (e.g. GOGC=200)")
	flag.StringVar(&o.only, "only", "", "bare or pipelined: drain with one client only")
	flag.StringVar(&o.profile, "bare-cpuprofile", "", "write the bare client's CPU profile (last drain) to this file")
	flag.StringVar(&o.plProf, "pipelined-cpuprofile", "", "write pipelined's CPU profile (its first 10 s of the last drain, from /debug/pprof/) to this file")
	flag.StringVar(&o.harnessProf, "harness-cpuprofile", "", "write this process's CPU profile (the local broker and ClickHouse) during the last pipelined drain to this file")
	flag.StringVar(&o.brokerProf, "broker-cpuprofile", "", "write this process's CPU profile (the local broker) during the last bare drain to this file")
	flag.DurationVar(&o.timeout, "timeout", 4*time.Minute, "limit on one drain")
	flag.StringVar(&o.chDir, "clickhouse-dir", defaultCHDir(), "directory for the local ClickHouse's data directory, made for the run and removed after it; empty: chlocal's default, on disk")
	flag.StringVar(&o.thp, "thp", "always", "transparent huge pages mode for the run, as the Ansible role sets it on the pipelined host (written to "+thp.EnabledPath+" and put back at the end; needs root); empty: leave the host's")
	flag.IntVar(&o.hotCount, "hotpath-count", defaultHotPathCount, "runs (go test -count) of each pipeline hot-path benchmark, before the drains and under the same transparent huge pages mode; 0 skips the hot-path benchmarks")
	flag.Parse()
	if o.hotCount < 0 {
		return fmt.Errorf("-hotpath-count %d: want 0 or more", o.hotCount)
	}
	if o.pipelined == "" && o.only != "bare" {
		return fmt.Errorf("-pipelined is required")
	}
	if o.pipelined != "" {
		p, err := filepath.Abs(o.pipelined)
		if err != nil {
			return err
		}
		o.pipelined = p
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	started := time.Now()
	load0 := loadavg()
	restore := setTHP(&o, logf)
	defer restore()
	// The hot-path benchmarks first, before the test services start: after the drains the
	// local ClickHouse (chDB, in this process) may still be merging what they wrote.
	hp, err := runHotPath(ctx, o.hotCount, nil, logf)
	if err != nil {
		return fmt.Errorf("hot-path benchmarks: %w", err)
	}

	cache := os.Getenv("PIPELINED_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return err
		}
		cache = filepath.Join(home, ".cache", "pipelined")
	}
	var chData string
	if o.chDir != "" {
		d, err := chlocal.ProcessDataDir(o.chDir)
		if err != nil {
			return fmt.Errorf("local ClickHouse: %w", err)
		}
		chData = d
		defer os.RemoveAll(d)
	}
	chs, err := chlocal.New(chlocal.Config{Addr: "127.0.0.1:0", DataDir: chData, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return fmt.Errorf("local ClickHouse: %w", err)
	}
	if err := chs.Start(); err != nil {
		return err
	}
	defer chs.Close()

	var results []drainResult
	sizes := []struct {
		record string
		n      int64
		padded bool
	}{{"41 B", o.messages, false}, {"~300 B", o.padded, true}}
	for _, sz := range sizes {
		if sz.n <= 0 {
			continue
		}
		rs, err := drainSize(ctx, o, cache, sz.record, sz.n, sz.padded, chs.Addr(), logf)
		results = append(results, rs...)
		if err != nil {
			writeResults(o, results, hp, started, load0, logf)
			return err
		}
	}
	return writeResults(o, results, hp, started, load0, logf)
}

// drainSize loads one backlog into a fresh broker and drains it o.rounds times with each client.
func drainSize(ctx context.Context, o options, cache, record string, n int64, padded bool, chAddr string, logf func(string, ...any)) ([]drainResult, error) {
	b, err := pulsarlocal.New(pulsarlocal.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		return nil, err
	}
	b.Start()
	defer b.Close()
	base := time.Date(2026, 1, 1, 0, 0, 50, 0, time.UTC).UnixMilli() // the first window closes 15 s of event time in (watermark 5 s)
	shape := backlogShape{Messages: n, Partitions: o.partitions, Devices: o.devices, Padded: padded, Producers: 4, Rate: o.rate, BaseMs: base}
	info, err := loadBacklog(b, topicName, filepath.Join(cache, "bench"), shape, logf)
	if err != nil {
		return nil, err
	}
	schema := ""
	if padded {
		wd, _ := os.Getwd()
		schema = filepath.Join(wd, "internal", "schemas", "SensorDataPadded.avsc")
	}
	bc := bareConfig{URL: b.URL(), Topic: topicName, Queue: o.queue, Channel: o.channel, Connections: o.conns, AckInterval: 100 * time.Millisecond, CPUProfile: o.profile, PipelinedProfile: o.plProf, ProfileSeconds: 10}
	var env []string
	if o.env != "" {
		env = strings.Fields(o.env)
	}
	var out []drainResult
	for r := 1; r <= o.rounds; r++ {
		for _, client := range roundOrder(r) {
			if o.only != "" && o.only != client {
				continue
			}
			d := &drainSpec{broker: b, topic: topicName, partitions: o.partitions, messages: n, bytes: info.PayloadBytes,
				record: record, round: r, sub: fmt.Sprintf("%s_%d_%d_%d", client, r, n, time.Now().Unix()), timeout: o.timeout,
				ackGrace: ackGrace}
			bc.Subscription = d.sub
			var res drainResult
			var err error
			t0 := time.Now()
			h0, _ := procStat(os.Getpid())
			if client == "bare" {
				stop := startProfile(o.brokerProf, logf)
				res, err = runBareDrain(ctx, d, bc, env)
				stop()
			} else {
				stop := startProfile(o.harnessProf, logf)
				res, err = runPipelinedDrain(ctx, d, o.pipelined, chAddr, schema, bc, env)
				stop()
			}
			if err != nil {
				return out, fmt.Errorf("%s round %d (%s): %w", client, r, record, err)
			}
			if h1, err := procStat(os.Getpid()); err == nil {
				res.Harness = h1 - h0
			}
			logf("%s %s round %d: %d msgs drained in %.2fs (received in %.2fs), %.0f msg/s, CPU %.1fs, RSS %d MiB, GC %.1f%%, %.2f allocs/msg (total %s)",
				record, client, r, n, res.Drain.Seconds(), res.Receive.Seconds(), float64(n)/res.Drain.Seconds(), res.CPU, res.RSS>>20, 100*res.GCShare, res.Allocs, time.Since(t0).Round(time.Millisecond))
			out = append(out, res)
		}
	}
	return out, nil
}

// defaultCHDir is where the local ClickHouse keeps its data during a run: in memory (/dev/shm)
// where the host has it, since it stands in for a server on another host and its storage is not
// what is measured. On this disk (ext4) creating the files of its parts, about a dozen per
// INSERT and per merge, took 0.5-0.6 CPU-seconds of a 41-byte drain in the inode allocator
// (perf, phase 20), on the two CPUs the client shares.
func defaultCHDir() string {
	const shm = "/dev/shm"
	if fi, err := os.Stat(shm); err != nil || !fi.IsDir() {
		return ""
	}
	return shm
}

// roundOrder is the order of the clients in round r: bare first in odd rounds, pipelined first
// in even ones (ABBA), so that a host that speeds up or slows down over a run, or whatever the
// drain before leaves behind (the other client's freed memory, the broker's caches), weighs on
// both clients alike rather than always on the second.
func roundOrder(r int) []string {
	if r%2 == 1 {
		return []string{"bare", "pipelined"}
	}
	return []string{"pipelined", "bare"}
}

// startProfile profiles this process into file until the returned function is called; with
// an empty file it does nothing.
func startProfile(file string, logf func(string, ...any)) (stop func()) {
	if file == "" {
		return func() {}
	}
	f, err := os.Create(file)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		logf("harness profile: %v", err)
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// setTHP sets the transparent huge pages mode o.thp asks for, notes in o.thpNote what the run
// had, and returns what puts the host's mode back. A host where it cannot be set runs with its
// own mode, and the table says so.
func setTHP(o *options, logf func(string, ...any)) (restore func()) {
	restore = func() {}
	if o.thp == "" {
		m, err := thp.Mode(thp.EnabledPath)
		o.thpNote = m + " (the host's)"
		if err != nil {
			o.thpNote = fmt.Sprintf("unknown (%v)", err)
		}
		return restore
	}
	was, err := thp.Set(thp.EnabledPath, o.thp) // was is the host's mode, also when the write failed
	switch {
	case err != nil:
		logf("%v; running with the host's mode", err)
		o.thpNote = fmt.Sprintf("%s (the host's; setting %s failed: %v)", cmp.Or(was, "unknown"), o.thp, err)
	case was == o.thp:
		o.thpNote = o.thp + " (the host's)"
	default:
		logf("transparent huge pages: %s for this run (the host had %s)", o.thp, was)
		o.thpNote = fmt.Sprintf("%s (set for this run; the host had %s, put back after)", o.thp, was)
		restore = func() {
			if _, err := thp.Set(thp.EnabledPath, was); err != nil {
				logf("put back the host's mode: %v", err)
			}
		}
	}
	return restore
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func goVersion() string {
	out, err := exec.Command("go", "version").Output()
	if err != nil {
		return runtime.Version()
	}
	return strings.TrimSpace(string(out))
}

const (
	beginMarker = "<!-- bench:begin -->"
	endMarker   = "<!-- bench:end -->"
)

// median returns the middle of xs (the mean of the two middle ones for an even count).
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// roundRatios are pipelined / bare of one record's rounds: the rates, the messages per CPU-second
// of the client process, and the messages per CPU-second of the client and the harness together
// (the two CPUs' whole work, when the test services share them).
type roundRatios struct{ rate, cpu, machine []float64 }

func (rr *roundRatios) add(pl, bare drainResult) {
	rr.rate = append(rr.rate, pl.rate()/bare.rate())
	rr.cpu = append(rr.cpu, pl.perCPU()/bare.perCPU())
	rr.machine = append(rr.machine, pl.perMachineCPU()/bare.perMachineCPU())
}

// table renders the results as Markdown: the drains, then the hot-path benchmarks (none when hp
// is nil).
func table(o options, rs []drainResult, hp *hotPath, started time.Time, load0 string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "Run %s UTC, %s on %d CPUs (%s), load average %s at start, %s at end; took %s. Transparent huge pages: %s.\n\n",
		started.UTC().Format("2006-01-02 15:04"), goVersion(), runtime.NumCPU(), cpuModel(), load0, loadavg(), time.Since(started).Round(time.Second), o.thpNote)
	fmt.Fprintf(&sb, "Command: `go run ./bench -pipelined ./pipelined -n %d -padded-n %d -rounds %d -receiver-queue %d -message-channel %d -connections %d", o.messages, o.padded, o.rounds, o.queue, o.channel, o.conns)
	if o.thp != "always" {
		fmt.Fprintf(&sb, " -thp '%s'", o.thp)
	}
	if o.env != "" {
		fmt.Fprintf(&sb, " -env '%s'", o.env)
	}
	if o.hotCount != defaultHotPathCount {
		fmt.Fprintf(&sb, " -hotpath-count %d", o.hotCount)
	}
	sb.WriteString("`\n\n")
	sb.WriteString("| record | client | round | messages | drain s | msg/s | msg/s per CPU-s | MB/s | allocs/msg | peak RSS MiB | GC share | close→visible p99 | pipelined / bare |\n")
	sb.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	type round struct {
		record string
		n      int
	}
	bare := map[round]drainResult{} // whichever client drained first
	for _, r := range rs {
		if r.Client == "bare" {
			bare[round{r.Record, r.Round}] = r
		}
	}
	ratios := map[string]*roundRatios{} // by record
	var records []string
	for _, r := range rs {
		ratio := "-"
		if b, ok := bare[round{r.Record, r.Round}]; ok && r.Client != "bare" && b.rate() > 0 {
			rr := ratios[r.Record]
			if rr == nil {
				rr = &roundRatios{}
				ratios[r.Record] = rr
				records = append(records, r.Record)
			}
			rr.add(r, b)
			ratio = fmt.Sprintf("%.2f", rr.rate[len(rr.rate)-1])
		}
		p99 := "-"
		if !math.IsNaN(r.P99) {
			p99 = fmt.Sprintf("≤ %gs", r.P99)
		}
		fmt.Fprintf(&sb, "| %s | %s | %d | %d | %.2f | %.0f | %.0f | %.1f | %.2f | %d | %.1f%% | %s | %s |\n",
			r.Record, r.Client, r.Round, r.Messages, r.Drain.Seconds(), r.rate(), r.perCPU(),
			float64(r.Bytes)/r.Drain.Seconds()/1e6, r.Allocs, r.RSS>>20, 100*r.GCShare, p99, ratio)
	}
	if len(records) > 0 {
		medians := func(format string, pick func(*roundRatios) []float64) {
			for i, rec := range records {
				sep := ","
				if i == 0 {
					sep = ""
				}
				fmt.Fprintf(&sb, "%s %s "+format, sep, rec, median(pick(ratios[rec])))
			}
		}
		sb.WriteString("\nMedian pipelined / bare over the rounds (the host is shared, so single rounds scatter):")
		medians("**%.2f**", func(rr *roundRatios) []float64 { return rr.rate })
		sb.WriteString(". The same for messages per CPU-second, the client process's alone:")
		medians("%.2f", func(rr *roundRatios) []float64 { return rr.cpu })
		sb.WriteString("; and with the harness's CPU added (the broker, and for pipelined the local ClickHouse):")
		medians("%.2f", func(rr *roundRatios) []float64 { return rr.machine })
		sb.WriteString(".\n")
	}
	sb.WriteString("\nDrain: first subscribe to the last partition's backlog at zero (broker-side). Each client is sent SIGTERM once it has received every message: the bare client acknowledges what it took and exits; pipelined, which acknowledges only what is in ClickHouse, writes its open windows (graceful stop) and acknowledges them, so its drain includes the last ClickHouse insert. close→visible p99 is read from pipelined's /metrics before the stop (windows closed by the watermark only). MB/s counts Avro payload bytes. CPU (from the first subscribe) and peak RSS (VmHWM, sampled every 20 ms until exit) are the client process's only (the broker and ClickHouse run in the harness process). Allocations per message are the process's total heap allocations divided by the messages.\n")
	sb.WriteString("The harness process (the broker, and for pipelined also ClickHouse) shares the two CPUs; its CPU seconds over each drain follow.\n")
	for _, r := range rs {
		if r.Client == "bare" {
			fmt.Fprintf(&sb, "- %s bare round %d: harness CPU %.1fs.\n", r.Record, r.Round, r.Harness)
		}
		if r.Client == "pipelined" {
			fmt.Fprintf(&sb, "- %s pipelined round %d: every message received after %.2fs, %0.f late; harness CPU %.1fs.\n", r.Record, r.Round, r.Receive.Seconds(), r.Late, r.Harness)
		}
	}
	if hp != nil {
		sb.WriteString(hotPathTable(hp))
	}
	return sb.String()
}

func writeResults(o options, rs []drainResult, hp *hotPath, started time.Time, load0 string, logf func(string, ...any)) error {
	t := table(o, rs, hp, started, load0)
	fmt.Println(t)
	if o.results == "" {
		return nil
	}
	old, err := os.ReadFile(o.results)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(old)
	i, j := strings.Index(s, beginMarker), strings.Index(s, endMarker)
	if i < 0 || j < i {
		s = s + "\n" + beginMarker + "\n" + endMarker + "\n"
		i, j = strings.Index(s, beginMarker), strings.Index(s, endMarker)
	}
	s = s[:i+len(beginMarker)] + "\n" + t + s[j:]
	if err := os.WriteFile(o.results, []byte(s), 0o644); err != nil {
		return err
	}
	logf("wrote %s", o.results)
	return nil
}
