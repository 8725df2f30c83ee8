// Command demo runs pipelined end to end on this machine: the local Pulsar broker, the reference
// load generator, the pipelined binary, and the local ClickHouse. It shows live progress, prints
// what landed in ClickHouse, and exits non-zero unless ClickHouse counts exactly the messages
// that were produced.
//
//	DEMO_SECONDS  seconds of load (and so of event time); default 60
//	DEMO_RATE     messages per second; default 20000
//	DEMO_DEVICES  devices; default 100000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/pipelined/pipelined/internal/chlocal"
	"github.com/pipelined/pipelined/internal/loadgen"
	"github.com/pipelined/pipelined/internal/promtext"
	"github.com/pipelined/pipelined/internal/pulsarlocal"
)

const topic = "persistent://public/default/iot-sensor-data"

func main() {
	bin := flag.String("pipelined", "./pipelined", "the pipelined `binary` to run")
	flag.Parse()
	code := 0
	if err := run(*bin); err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo: FAILED: %v\n", err)
		code = 1
	}
	os.Exit(code)
}

func envInt(name string, def int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive whole number", name, v)
	}
	return n, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func run(bin string) error {
	seconds, err := envInt("DEMO_SECONDS", 60)
	if err != nil {
		return err
	}
	rate, err := envInt("DEMO_RATE", 20000)
	if err != nil {
		return err
	}
	devices, err := envInt("DEMO_DEVICES", 100000)
	if err != nil {
		return err
	}
	total := int64(seconds) * int64(rate)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	work, err := os.MkdirTemp("", "pipelined-demo-")
	if err != nil {
		return err
	}

	step("starting the local Pulsar broker (64 partitions)")
	broker, err := pulsarlocal.New(pulsarlocal.Config{DefaultPartitions: 64})
	if err != nil {
		return err
	}
	broker.Start()
	defer broker.Close()
	if err := broker.CreateTopic(topic, 64); err != nil {
		return err
	}
	fmt.Printf("    %s\n", broker.URL())

	step("starting the local ClickHouse (chDB behind the native protocol)")
	chs, err := chlocal.New(chlocal.Config{DataDir: filepath.Join(work, "clickhouse"), Logger: quiet})
	if err != nil {
		return err
	}
	if err := chs.Start(); err != nil {
		return err
	}
	defer chs.Close()
	fmt.Printf("    %s\n", chs.Addr())

	httpAddr, err := freeAddr()
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(work, "config.yaml")
	cfg := fmt.Sprintf(`pulsar:
  url: %s
  topic: %s
clickhouse:
  addr: %s
  database: demo
http:
  listen: %s
window:
  size: 1m
  idle_flush: 0s
log:
  format: text
`, broker.URL(), topic, chs.Addr(), httpAddr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	logPath := filepath.Join(work, "pipelined.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()

	step("starting pipelined: " + bin + " run -c " + cfgPath)
	cmd := exec.Command(bin, "run", "-c", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	}()
	fmt.Printf("    log: %s\n", logPath)
	if err := waitReady(ctx, httpAddr, exited); err != nil {
		return fmt.Errorf("%w (see %s)", err, logPath)
	}

	step(fmt.Sprintf("producing %d readings: %d devices, %d msg/s for %d s, keyed by device, batched, LZ4", total, devices, rate, seconds))
	var sent atomic.Int64
	prod, err := loadgen.NewProducer(loadgen.ProducerConfig{
		URL: broker.URL(), Topic: topic, Rate: rate, Count: total, Devices: devices,
		OnSend: func(loadgen.Sample) { sent.Add(1) }, Logger: quiet,
	})
	if err != nil {
		return err
	}
	defer prod.Close()
	prodDone := make(chan error, 1)
	go func() { _, err := prod.Run(ctx); prodDone <- err }()

	fmt.Printf("\n    %8s %12s %12s %10s %14s %12s\n", "elapsed", "produced", "consumed", "msg/s", "blocks written", "rows written")
	t0 := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last float64
	producing := true
	for {
		select {
		case err := <-prodDone:
			if err != nil {
				return fmt.Errorf("producer: %w", err)
			}
			producing = false
			prodDone = nil
		case err := <-exited:
			return fmt.Errorf("pipelined exited early: %v (see %s)", err, logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		m, err := promtext.Scrape("http://" + httpAddr + "/metrics")
		if err != nil {
			return fmt.Errorf("scrape pipelined: %w", err)
		}
		in := m.Sum("pipelined_messages_received_total")
		if prodDone == nil || producing {
			fmt.Printf("    %7.0fs %12d %12.0f %10.0f %14.0f %12.0f\n", time.Since(t0).Seconds(), sent.Load(), in, in-last,
				m.Sum("pipelined_blocks_written_total"), m.Sum("pipelined_rows_written_total"))
			last = in
		}
		if !producing && int64(in) >= sent.Load() {
			break
		}
	}

	step("every message consumed: stopping pipelined (SIGTERM writes the open windows and acknowledges them)")
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			return fmt.Errorf("pipelined stopped with %v (see %s)", err, logPath)
		}
	case <-time.After(60 * time.Second):
		return fmt.Errorf("pipelined did not stop within 60 s (see %s)", logPath)
	}
	fmt.Println("    pipelined exited 0")

	step("what is in ClickHouse (demo.sensor_agg_final: one row per device and minute)")
	return report(ctx, chs.Addr(), sent.Load())
}

func step(s string) { fmt.Printf("\n==> %s\n", s) }

func waitReady(ctx context.Context, addr string, exited <-chan error) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			return fmt.Errorf("pipelined exited: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return errors.New("pipelined not ready within 60 s")
}

func report(ctx context.Context, addr string, produced int64) error {
	c, err := ch.Dial(ctx, ch.Options{Address: addr, Database: "demo", ReadTimeout: time.Minute})
	if err != nil {
		return err
	}
	defer c.Close()
	var (
		win                             proto.ColDateTime
		devices, count                  proto.ColUInt64
		tavg, tmin, tmax, bavg          proto.ColFloat64
		s1, s2, s3, s4                  proto.ColUInt64
		dev                             proto.ColInt64
		davg, dmin, dmax, hum, pressure proto.ColFloat64
	)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "minute (UTC)\tdevices\treadings\tavg temp\tmin temp\tmax temp\tavg battery\tonline\toffline\tmaint.\terror\t")
	var totalCount uint64
	err = c.Do(ctx, ch.Query{
		Body: `SELECT window_start, toUInt64(count()) AS devices, toUInt64(sum(count)) AS readings,
			sum(temperature_sum) / sum(count) AS tavg, min(temperature_min) AS tmin, max(temperature_max) AS tmax,
			sum(battery_level_sum) / sum(count) AS bavg,
			toUInt64(sum(status_1)) AS s1, toUInt64(sum(status_2)) AS s2, toUInt64(sum(status_3)) AS s3, toUInt64(sum(status_4)) AS s4
			FROM demo.sensor_agg_final GROUP BY window_start ORDER BY window_start`,
		Result: proto.Results{{Name: "window_start", Data: &win}, {Name: "devices", Data: &devices}, {Name: "readings", Data: &count},
			{Name: "tavg", Data: &tavg}, {Name: "tmin", Data: &tmin}, {Name: "tmax", Data: &tmax}, {Name: "bavg", Data: &bavg},
			{Name: "s1", Data: &s1}, {Name: "s2", Data: &s2}, {Name: "s3", Data: &s3}, {Name: "s4", Data: &s4}},
		OnResult: func(context.Context, proto.Block) error {
			for i := range win.Rows() {
				totalCount += count.Row(i)
				fmt.Fprintf(w, "%s\t%d\t%d\t%.2f\t%.2f\t%.2f\t%.1f\t%d\t%d\t%d\t%d\t\n", win.Row(i).UTC().Format("2006-01-02 15:04"),
					devices.Row(i), count.Row(i), tavg.Row(i), tmin.Row(i), tmax.Row(i), bavg.Row(i), s1.Row(i), s2.Row(i), s3.Row(i), s4.Row(i))
			}
			return nil
		},
	})
	if err != nil {
		return fmt.Errorf("query per-minute totals: %w", err)
	}
	w.Flush()

	fmt.Println("\n    a few devices, minute by minute:")
	w = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "device\tminute (UTC)\treadings\tavg temp\tmin temp\tmax temp\tavg humidity\tavg pressure\t")
	err = c.Do(ctx, ch.Query{
		Body: `SELECT device_id, window_start, count, temperature_avg, temperature_min, temperature_max, humidity_avg, pressure_avg
			FROM demo.sensor_agg_final WHERE device_id IN (7, 42, 4242) ORDER BY device_id, window_start`,
		Result: proto.Results{{Name: "device_id", Data: &dev}, {Name: "window_start", Data: &win}, {Name: "count", Data: &count},
			{Name: "temperature_avg", Data: &davg}, {Name: "temperature_min", Data: &dmin}, {Name: "temperature_max", Data: &dmax},
			{Name: "humidity_avg", Data: &hum}, {Name: "pressure_avg", Data: &pressure}},
		OnResult: func(context.Context, proto.Block) error {
			for i := range dev.Rows() {
				fmt.Fprintf(w, "%d\t%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", dev.Row(i), win.Row(i).UTC().Format("15:04"), count.Row(i),
					davg.Row(i), dmin.Row(i), dmax.Row(i), hum.Row(i), pressure.Row(i))
			}
			return nil
		},
	})
	if err != nil {
		return fmt.Errorf("query devices: %w", err)
	}
	w.Flush()

	fmt.Printf("\n    produced %d, ClickHouse counts %d: ", produced, totalCount)
	if int64(totalCount) != produced {
		fmt.Println("MISMATCH")
		return fmt.Errorf("ClickHouse counts %d readings, %d were produced", totalCount, produced)
	}
	fmt.Println("equal, nothing lost or counted twice")
	return nil
}
