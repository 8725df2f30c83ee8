package tests

import (
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipelined/pipelined/internal/loadgen"
)

// One million messages through the real producer, the local Pulsar, pipelined and the local
// ClickHouse: every device and minute in ClickHouse equals what the test computed itself.
func TestEndToEndMillion(t *testing.T) {
	n := int64(1_000_000)
	if testing.Short() {
		n = 20_000
	}
	s := startServices(t, 64)
	e := newExpectation()
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Minute).UnixMilli()
	t0 := time.Now()
	s.produce(t, e, n, 10_000, base, 5)
	t.Logf("produced %d messages in %s", n, time.Since(t0))
	cfg := s.config()
	t0 = time.Now()
	p := runPipeline(t, cfg, uint64(n))
	t.Logf("pipeline consumed and wrote them in %s", time.Since(t0))
	if late := p.Metrics().Late(); late != 0 {
		t.Fatalf("%d messages were late; the test's disorder should be within the watermark delay", late)
	}
	compare(t, e.cells, s.found(t, cfg))
}

// schema.from_registry: the decoder is built from the schema the producer registered with the
// topic in Pulsar's schema registry. The producer sends the padded record, which the built-in
// SensorData schema would reject (trailing bytes), so the test fails unless the registry's
// schema is used.
func TestEndToEndSchemaFromRegistry(t *testing.T) {
	const n = 20_000
	s := startServices(t, 8)
	e := newExpectation()
	var i atomic.Int64
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Minute).UnixMilli()
	p, err := loadgen.NewProducer(loadgen.ProducerConfig{
		URL: s.broker.URL(), Topic: topic, Count: n, Devices: 1_000, Padded: true,
		Clock:  func() int64 { return base + i.Add(1)*120_000/n },
		OnSend: e.onSend,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	p.Close()
	cfg := s.config()
	cfg.Schema.FromRegistry = true
	pl := runPipeline(t, cfg, n)
	if bad := pl.Metrics().DecodeErrors(); bad != 0 {
		t.Fatalf("%d decode errors: the registry's schema was not used", bad)
	}
	compare(t, e.cells, s.found(t, cfg))
}
