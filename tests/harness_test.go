// Package tests holds pipelined's end-to-end tests: the real pulsar-client-go producer into the
// local Pulsar broker, pipelined, and the local ClickHouse, all over TCP.
package tests

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/pipelined/pipelined/internal/chlocal"
	"github.com/pipelined/pipelined/internal/loadgen"
	"github.com/pipelined/pipelined/internal/pulsarlocal"
	"github.com/pipelined/pipelined/pipeline"
)

const topic = "persistent://public/default/iot-sensor-data"

// cell is one device-minute's expected (or found) aggregate.
type cell struct {
	count    uint64
	min, max [4]float64
	sum      [4]float64
	status   [4]uint64
}

func (c *cell) add(s loadgen.Sample) {
	v := [4]float64{s.Temperature, s.Humidity, s.Pressure, s.BatteryLevel}
	if c.count == 0 {
		c.min, c.max = v, v
	}
	c.count++
	for i := range v {
		c.min[i] = math.Min(c.min[i], v[i])
		c.max[i] = math.Max(c.max[i], v[i])
		c.sum[i] += v[i]
	}
	if s.Status >= 1 && s.Status <= 4 {
		c.status[s.Status-1]++
	}
}

type key struct {
	device int64
	window int64 // window start, epoch seconds
}

// expectation computes per device-minute aggregates from exactly what the broker acknowledged.
type expectation struct {
	mu    sync.Mutex
	cells map[key]*cell
	n     atomic.Int64
}

func newExpectation() *expectation { return &expectation{cells: map[key]*cell{}} }

func (e *expectation) onSend(s loadgen.Sample) {
	k := key{int64(s.SensorID), s.Timestamp / 60000 * 60}
	e.mu.Lock()
	c := e.cells[k]
	if c == nil {
		c = &cell{}
		e.cells[k] = c
	}
	c.add(s)
	e.mu.Unlock()
	e.n.Add(1)
}

// services are the local Pulsar broker and ClickHouse for one test.
type services struct {
	broker *pulsarlocal.Broker
	ch     *chlocal.Server
	db     string
}

var dbSeq atomic.Int64

func startServices(t *testing.T, partitions int) *services {
	t.Helper()
	s := &services{
		broker: pulsarlocal.NewTest(t, pulsarlocal.Config{DefaultPartitions: partitions}),
		ch:     chlocal.NewTest(t),
		db:     fmt.Sprintf("e2e_%d_%d", os.Getpid(), dbSeq.Add(1)),
	}
	if err := s.broker.CreateTopic(topic, partitions); err != nil {
		t.Fatal(err)
	}
	return s
}

// config returns pipelined's configuration for these services.
func (s *services) config() pipeline.Config {
	cfg := pipeline.DefaultConfig()
	cfg.Pulsar.URL = s.broker.URL()
	cfg.Pulsar.Topic = topic
	cfg.ClickHouse.Addr = s.ch.Addr()
	cfg.ClickHouse.Database = s.db
	cfg.HTTP.Listen = ""
	cfg.Window.IdleFlush = 0
	// The test produces minutes of event time in about a second, so a millisecond of
	// interleaving between producers is seconds of event-time disorder.
	cfg.Window.WatermarkDelay = 90 * time.Second
	cfg.ShutdownTimeout = time.Minute
	return cfg
}

// produce sends n messages over devices devices with event times spread evenly over
// minutes minutes starting at base (epoch ms), recording them in e.
func (s *services) produce(t *testing.T, e *expectation, n int64, devices int, base int64, minutes int) {
	t.Helper()
	var i atomic.Int64
	span := int64(minutes) * 60000
	p, err := loadgen.NewProducer(loadgen.ProducerConfig{
		URL: s.broker.URL(), Topic: topic, Count: n, Devices: devices, Seed: uint64(base),
		Clock:  func() int64 { return base + i.Add(1)*span/n },
		OnSend: e.onSend,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	st, err := p.Run(t.Context())
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	if st.Messages != n || e.n.Load() != n {
		t.Fatalf("produced %d, recorded %d, want %d", st.Messages, e.n.Load(), n)
	}
}

// runPipeline runs pipelined in this process until every one of want messages has been
// received, then stops it gracefully and returns once it has written and acknowledged all.
func runPipeline(t *testing.T, cfg pipeline.Config, want uint64) *pipeline.Pipeline {
	t.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p, err := pipeline.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.After(10 * time.Minute)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for p.Metrics().Received() < want {
		select {
		case err := <-done:
			cancel()
			t.Fatalf("pipeline stopped early after %d of %d messages: %v", p.Metrics().Received(), want, err)
		case <-deadline:
			cancel()
			t.Fatalf("pipeline received %d of %d messages in 10 minutes", p.Metrics().Received(), want)
		case <-tick.C:
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("pipeline run: %v", err)
	}
	return p
}

// found reads the final view: one row per device and minute.
func (s *services) found(t *testing.T, cfg pipeline.Config) map[key]*cell {
	t.Helper()
	c, err := ch.Dial(t.Context(), ch.Options{Address: s.ch.Addr(), Database: s.db, ReadTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var (
		dev                proto.ColInt64
		win                proto.ColDateTime
		count              proto.ColUInt64
		mins, maxs, sums   [4]proto.ColFloat64
		st1, st2, st3, st4 proto.ColUInt64
		measures           = []string{"temperature", "humidity", "pressure", "battery_level"}
		cols               = "device_id, window_start, count"
		res                = proto.Results{{Name: "device_id", Data: &dev}, {Name: "window_start", Data: &win}, {Name: "count", Data: &count}}
	)
	for i, m := range measures {
		cols += fmt.Sprintf(", %[1]s_min, %[1]s_max, %[1]s_sum", m)
		res = append(res, proto.ResultColumn{Name: m + "_min", Data: &mins[i]}, proto.ResultColumn{Name: m + "_max", Data: &maxs[i]}, proto.ResultColumn{Name: m + "_sum", Data: &sums[i]})
	}
	cols += ", status_1, status_2, status_3, status_4"
	res = append(res, proto.ResultColumn{Name: "status_1", Data: &st1}, proto.ResultColumn{Name: "status_2", Data: &st2}, proto.ResultColumn{Name: "status_3", Data: &st3}, proto.ResultColumn{Name: "status_4", Data: &st4})
	out := map[key]*cell{}
	err = c.Do(t.Context(), ch.Query{
		Body:   fmt.Sprintf("SELECT %s FROM `%s`.`%s`", cols, s.db, cfg.ClickHouse.ViewName()),
		Result: res.Auto(),
		OnResult: func(context.Context, proto.Block) error {
			for i := range dev.Rows() {
				k := key{dev.Row(i), win.Row(i).Unix()}
				if out[k] != nil {
					return fmt.Errorf("device %d window %d appears twice in the view", k.device, k.window)
				}
				cl := &cell{count: count.Row(i), status: [4]uint64{st1.Row(i), st2.Row(i), st3.Row(i), st4.Row(i)}}
				for m := range 4 {
					cl.min[m], cl.max[m], cl.sum[m] = mins[m].Row(i), maxs[m].Row(i), sums[m].Row(i)
				}
				out[k] = cl
			}
			return nil
		},
	})
	if err != nil {
		t.Fatalf("query view: %v", err)
	}
	return out
}

// compare fails unless got holds exactly the expected device-minutes: counts, min, max and
// status counts exactly, sums to floating-point reordering.
func compare(t *testing.T, want map[key]*cell, got map[key]*cell) {
	t.Helper()
	bad := 0
	report := func(format string, args ...any) {
		bad++
		if bad <= 10 {
			t.Errorf(format, args...)
		}
	}
	var total uint64
	for k, w := range want {
		g := got[k]
		if g == nil {
			report("device %d minute %d: missing (want count %d)", k.device, k.window, w.count)
			continue
		}
		total += g.count
		if g.count != w.count || g.status != w.status {
			report("device %d minute %d: count %d statuses %v, want %d %v", k.device, k.window, g.count, g.status, w.count, w.status)
			continue
		}
		for m := range 4 {
			if g.min[m] != w.min[m] || g.max[m] != w.max[m] || math.Abs(g.sum[m]-w.sum[m]) > 1e-9*math.Abs(w.sum[m]) {
				report("device %d minute %d measure %d: min/max/sum %v/%v/%v, want %v/%v/%v", k.device, k.window, m, g.min[m], g.max[m], g.sum[m], w.min[m], w.max[m], w.sum[m])
			}
		}
	}
	for k, g := range got {
		if want[k] == nil {
			report("device %d minute %d: unexpected row with count %d", k.device, k.window, g.count)
		}
	}
	if bad > 0 {
		t.Fatalf("%d device-minutes differ (of %d expected, %d found)", bad, len(want), len(got))
	}
}
