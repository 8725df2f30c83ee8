package tests

import (
	"testing"
	"time"
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
