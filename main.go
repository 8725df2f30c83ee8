// Command pipelined consumes Avro sensor readings from Apache Pulsar, aggregates them per device
// in tumbling windows and writes the aggregates to ClickHouse.
//
//	pipelined run -c config.yaml      the daemon
//	pipelined check -c config.yaml    validate the configuration and exit
//	pipelined produce [flags]         the reference load generator
//	pipelined version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/pipelined/pipelined/internal/loadgen"
	"github.com/pipelined/pipelined/internal/sdnotify"
	"github.com/pipelined/pipelined/internal/thp"
	"github.com/pipelined/pipelined/pipeline"
)

// version is set at build time with -ldflags "-X main.version=..."; otherwise from build info.
var version = ""

const usage = `pipelined: Pulsar -> Avro -> per-device windows -> ClickHouse

Usage:
  pipelined run -c FILE       run the daemon
  pipelined check -c FILE     validate FILE (and the environment overrides); exit 1 on problems
  pipelined produce [flags]   send reference sensor readings to Pulsar (load generator)
  pipelined version           print the version

Run 'pipelined COMMAND -h' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "produce":
		return cmdProduce(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "pipelined", getVersion())
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "pipelined: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// parseExit is the exit code for a flag parse error: 0 for -h/--help, 2 for a usage error.
func parseExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

func getVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func configFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := fs.String("c", "config.yaml", "configuration `file` (YAML); environment variables PIPELINED_* override it")
	return fs, c
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs, path := configFlags("check", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: pipelined check -c FILE\n\nValidates the configuration: prints every problem with its key and exits 1, or exits 0.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if _, err := pipeline.LoadConfig(*path); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", *path, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return 0
}

func newLogger(cfg pipeline.LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level)) // validated
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.Format
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func cmdRun(args []string, stderr io.Writer) int {
	fs, path := configFlags("run", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: pipelined run -c FILE\n\nRuns the pipeline until SIGINT or SIGTERM, then stops gracefully within shutdown_timeout.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	cfg, err := pipeline.LoadConfig(*path)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", *path, err)
		return 1
	}
	log := newLogger(cfg.Log, stderr)
	slog.SetDefault(log)
	log.Info("starting", "version", getVersion(), "config", *path)
	if m, err := thp.Mode(thp.EnabledPath); err == nil && m != "always" {
		// Not an error: pipelined runs the same, at more CPU per message (internal/thp).
		log.Info("transparent huge pages are not \"always\": the Go heap runs on 4 KiB pages, which costs CPU per message; the Ansible role sets them (pipelined_transparent_hugepages)",
			"mode", m, "switch", thp.EnabledPath)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	p, err := pipeline.New(cfg, log)
	if err != nil {
		log.Error("start", "err", err.Error())
		return 1
	}
	var h *pipeline.HTTP
	if cfg.HTTP.Listen != "" {
		if h, err = pipeline.NewHTTP(cfg.HTTP.Listen, p.Metrics(), log); err != nil {
			log.Error("start", "err", err.Error())
			return 1
		}
		h.Start()
		log.Info("serving /metrics, /healthz, /readyz", "addr", h.Addr())
	}
	go func() {
		select {
		case <-p.Ready():
			if err := sdnotify.Ready(); err != nil {
				log.Warn("sd_notify", "err", err.Error())
			}
		case <-ctx.Done():
		}
	}()
	context.AfterFunc(ctx, func() {
		log.Info("stopping: writing open windows and acknowledging them", "timeout", cfg.ShutdownTimeout)
		_ = sdnotify.Stopping()
	})

	runErr := p.Run(ctx)

	// Stop in reverse order of start, timing each.
	t0 := time.Now()
	if err := p.Close(); err != nil {
		log.Warn("stop", "component", "pipeline", "err", err.Error())
	}
	log.Info("stopped", "component", "pipeline", "took", time.Since(t0))
	if h != nil {
		t0 = time.Now()
		_ = h.Close()
		log.Info("stopped", "component", "http", "took", time.Since(t0))
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		log.Error("exit", "err", runErr.Error())
		return 1
	}
	return 0
}

func cmdProduce(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("produce", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := loadgen.ProducerConfig{}
	fs.StringVar(&cfg.URL, "url", "pulsar://127.0.0.1:6650", "Pulsar service `URL`")
	fs.StringVar(&cfg.Topic, "topic", "persistent://public/default/iot-sensor-data", "`topic` to produce to")
	fs.IntVar(&cfg.Rate, "rate", 0, "messages per second over all producers; 0 is as fast as possible")
	fs.Int64Var(&cfg.Count, "count", 0, "messages to send; 0 sends until interrupted")
	fs.IntVar(&cfg.Devices, "devices", 100000, "number of devices")
	fs.IntVar(&cfg.Producers, "producers", 4, "parallel producers")
	fs.BoolVar(&cfg.Padded, "padded", false, "send the ~300-byte padded record instead of the 41-byte one")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: pipelined produce [flags]\n\nSends the reference load: devices picked uniformly, reference value distributions, keyed by device, batched, LZ4.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	p, err := loadgen.NewProducer(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "produce: %v\n", err)
		return 1
	}
	t0 := time.Now()
	st, err := p.Run(ctx)
	el := time.Since(t0)
	fmt.Fprintf(stdout, "sent %d messages, %d bytes in %s (%.0f msg/s)\n", st.Messages, st.Bytes, el.Round(time.Millisecond), float64(st.Messages)/el.Seconds())
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "produce: %v\n", err)
		return 1
	}
	return 0
}
