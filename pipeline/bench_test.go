package pipeline

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/pipelined/pipelined/agg"
	"github.com/pipelined/pipelined/internal/loadgen"
	"github.com/pipelined/pipelined/internal/prefetch"
)

const hotPathStartMs = 1_767_225_600_000 // 2026-01-01T00:00:00Z

// BenchmarkHotPath is one message through decode and aggregate, as worker.handleBatch does it
// with what its channel holds: prefetchBatch payloads decoded (avrodec Decoder.DecodeBatch, a
// group at a time, the payloads ahead asked for as handleBatch does), then each reading added
// (agg.Stream.Add, after agg.Stream.PrefetchAhead) and every closed window popped and released
// (the write itself is BenchmarkEncodeRows), in 1-minute windows. Event time comes from the
// message, each held back by up to 3 s. An op is one message.
//
// The rate is the reference's: 1 M msg/s over 100,000 devices is 600 readings per device and
// minute, so a device's row is created once and then updated; per-minute=3 is a sparse
// stream where a third of the readings create a row. With 100,000 devices the window rows are
// in memory, not in a cache, as in the pipeline, where 64 partitions' windows take turns on two
// cores; with 1,563 (one partition's share) they fit in the core's cache, which leaves decode
// and aggregate's instructions.
func BenchmarkHotPath(b *testing.B) {
	for _, c := range []struct{ devices, perMinute int }{
		{100_000, 600}, {1_563, 600}, {100_000, 3},
	} {
		b.Run(fmt.Sprintf("devices=%d/per-minute=%d", c.devices, c.perMinute), func(b *testing.B) {
			benchmarkHotPath(b, c.devices, c.perMinute)
		})
	}
}

func benchmarkHotPath(b *testing.B, devices, perDeviceMinute int) {
	perMinute := int64(perDeviceMinute * devices)
	cfg := DefaultConfig()
	dec, err := cfg.Decoder("")
	if err != nil {
		b.Fatal(err)
	}
	// 2^20 messages: more than the devices, so the table accesses are as random as a live
	// stream's. They start 2 s before a window boundary, so that the warm-up below closes a
	// window soon at any rate.
	const n = 1 << 20
	startMs := int64(hotPathStartMs - 2_000)
	g := loadgen.New(loadgen.Config{Devices: devices, Seed: 7})
	rng := rand.New(rand.NewPCG(1, 2))
	span := int64(n) * 60_000 / perMinute
	payloads := make([][]byte, n)
	for i := range payloads {
		t := startMs + int64(i)*60_000/perMinute - rng.Int64N(3_000)
		_, payloads[i] = g.Next(t, nil)
	}
	// Each pass over the payloads decodes the same times; the decoded time is shifted by the
	// span of the passes before, so time keeps advancing.
	s := agg.NewStream(cfg.StreamConfig())
	rs := make([]agg.Reading, prefetchBatch)
	bs, ok := make([][]byte, prefetchBatch), make([]bool, prefetchBatch)
	var shift int64
	var addrs [prefetchAddrs]uintptr
	released := 0
	i := 0
	batch := func(m int) { // m <= prefetchBatch messages; n is a multiple of prefetchBatch
		rs, bs, ok := rs[:m], bs[:m], ok[:m]
		for k := 0; k < m; k += payloadGroup {
			from, to := payloadsAhead(k, m)
			a := 0
			for j := from; j < to; j++ {
				bs[j] = payloads[i+j]
				a = payloadLines(bs[j], addrs[:], a)
			}
			prefetch.Lines(addrs[:a])
			end := min(k+payloadGroup, m)
			dec.DecodeBatch(bs[k:end], rs[k:end], ok[k:end])
		}
		for k := range rs {
			if !ok[k] {
				b.Fatalf("payload %x did not decode", bs[k])
			}
			rs[k].TimeMs += shift
		}
		for k := range rs {
			s.PrefetchAhead(rs, k)
			s.Add(&rs[k], rs[k].TimeMs)
			for w := s.PopClosed(); w != nil; w = s.PopClosed() {
				s.Release(w)
				released++
			}
		}
		if i += m; i == n {
			i, shift = 0, shift+span
		}
	}
	// Warm up until a window has closed and been released for reuse, and every device has had
	// a dozen readings, so that the windows the measured messages open reuse grown memory.
	for warm := 0; released == 0 || warm < 12*devices; warm += prefetchBatch {
		batch(prefetchBatch)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		m := min(prefetchBatch, b.N-done, n-i)
		batch(m)
		done += m
	}
	b.StopTimer()
	b.ReportMetric(float64(s.Keys()), "open-device-windows")
}

// BenchmarkEncodeRows is one aggregate row into the ClickHouse columns: aggColumns.fill of a
// window of 1,000 devices, the columns reset and reused between blocks; an op is one row.
func BenchmarkEncodeRows(b *testing.B) {
	const rows = 1000
	cfg := DefaultConfig()
	w := agg.NewWindow(cfg.Spec(), rows)
	w.Reset(hotPathStartMs, 60_000)
	rng := rand.New(rand.NewPCG(5, 6))
	var r agg.Reading
	for d := range 10 * rows {
		r.Key, r.TimeMs, r.Status = int64(d%rows), hotPathStartMs+rng.Int64N(60_000), 1+rng.Int32N(4)
		for m := range 4 {
			r.Values[m] = rng.Float64() * 100
		}
		w.Add(&r)
	}
	c := newAggColumns(cfg.Spec(), cfg.Schema.Measures)
	blk := &block{partition: 3, window: w}
	c.reset()
	c.fill(blk) // grow the columns once
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += rows {
		c.reset()
		c.fill(blk)
	}
}
