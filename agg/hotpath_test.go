package agg

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// streamFeeder plays a steady, endless stream of readings into a Stream as the pipeline's hot
// path does: Add, then pop every closed window and release it (the write itself is not here).
// Time advances evenly at perMinute readings per minute, each reading held back by up to 3s
// (and one in a thousand by up to 30s, which is late), so windows open, close and are
// reused in steady state.
type streamFeeder struct {
	s         *Stream
	rs        []Reading // devices, statuses and values; times are set when fed
	lag       []int64
	perMinute int64
	n         int64 // readings fed so far
	late      int64
	released  int // windows closed and released
	batch     []Reading
}

func newStreamFeeder(cfg StreamConfig, devices int, perMinute int64) *streamFeeder {
	const seqLen = 1 << 20
	rng := rand.New(rand.NewPCG(3, 4))
	f := &streamFeeder{
		s:         NewStream(cfg),
		rs:        benchReadings(seqLen, devices, 2),
		lag:       make([]int64, seqLen),
		perMinute: perMinute,
	}
	for i := range f.lag {
		f.lag[i] = rng.Int64N(3_000)
		if rng.IntN(1000) == 0 {
			f.lag[i] = rng.Int64N(30_000)
		}
	}
	return f
}

const feedStartMs = 1_764_000_000_000 // an epoch time in 2025

func (f *streamFeeder) next() {
	j := f.n & int64(len(f.rs)-1)
	r := f.rs[j]
	r.TimeMs = feedStartMs + f.n*f.s.cfg.SizeMs/f.perMinute - f.lag[j]
	f.n++
	if _, out := f.s.Add(&r, r.TimeMs); out == Late {
		f.late++
	}
	for w := f.s.PopClosed(); w != nil; w = f.s.PopClosed() {
		f.s.Release(w)
	}
}

// nextBatch feeds n readings as the pipeline's worker does with what its channel holds:
// Add them one by one, each after PrefetchAhead, popping closed windows after each.
func (f *streamFeeder) nextBatch(n int) {
	f.batch = f.batch[:0]
	for k := range n {
		j := (f.n + int64(k)) & int64(len(f.rs)-1)
		r := f.rs[j]
		r.TimeMs = feedStartMs + (f.n+int64(k))*f.s.cfg.SizeMs/f.perMinute - f.lag[j]
		f.batch = append(f.batch, r)
	}
	for k := range f.batch {
		f.s.PrefetchAhead(f.batch, k)
		f.n++
		if _, out := f.s.Add(&f.batch[k], f.batch[k].TimeMs); out == Late {
			f.late++
		}
		for w := f.s.PopClosed(); w != nil; w = f.s.PopClosed() {
			f.s.Release(w)
			f.released++
		}
	}
}

// hotPathConfig is the pipeline's stream configuration: 1-minute windows, 5s watermark delay,
// and the SizeHint of 1024 it uses, so windows reach their size by growing.
func hotPathConfig() StreamConfig {
	return StreamConfig{Spec: benchSpec, SizeMs: 60_000, DelayMs: 5_000, SizeHint: 1024}
}

// TestStreamAddDoesNotAllocate is the hot path guarantee: once the windows have grown, adding
// readings, closing windows and reusing them allocates nothing.
func TestStreamAddDoesNotAllocate(t *testing.T) {
	const devices = 20_000
	const perMinute = 3 * devices
	f := newStreamFeeder(hotPathConfig(), devices, perMinute)
	for range 10 * perMinute { // warm up: ten windows opened, grown, closed and reused
		f.next()
	}
	opened := f.s.Open()[0].Start
	// One run is three minutes of readings, so every window operation happens while measured.
	allocs := testing.AllocsPerRun(1, func() {
		for range 3 * perMinute {
			f.next()
		}
	})
	if allocs != 0 {
		t.Fatalf("allocations in 3 minutes of readings after warm-up: got %v, want 0", allocs)
	}
	if got := f.s.Open()[0].Start; got < opened+5*60_000 {
		t.Fatalf("window start after the measured runs: got %d, want at least %d (windows must have cycled)", got, opened+5*60_000)
	}
	if f.late == 0 {
		t.Fatalf("late readings: got 0, want some, so the late path is measured too")
	}
}

// BenchmarkStreamAdd is the hot path: 100,000 devices, 4 measures, 4 statuses, 300,000
// readings per minute of event time, windows closing and reused in steady state.
func BenchmarkStreamAdd(b *testing.B) {
	const devices = 100_000
	const perMinute = 3 * devices
	f := newStreamFeeder(hotPathConfig(), devices, perMinute)
	for range 10 * perMinute { // warm up: the maps and slices of every pooled window have grown
		f.next()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		f.next()
	}
	b.ReportMetric(float64(f.s.Keys()), "open-device-windows")
}

// BenchmarkStreamAddBatch is BenchmarkStreamAdd with readings taken 256 at a time and
// prefetched (Stream.PrefetchAhead) as they are added, as the pipeline's worker takes them; an
// op is still one reading. per-minute=600 is the reference's rate (1 M msg/s over 100,000
// devices: a row is created once, then updated), per-minute=3 a sparse stream where a third of
// the readings create a row. With 100,000 devices the rows are in memory, not in a cache; with
// 1,563 (one partition's share of them over 64 partitions) they fit in the core's cache, which
// leaves the instructions.
func BenchmarkStreamAddBatch(b *testing.B) {
	for _, c := range []struct{ devices, perMinute int }{
		{100_000, 600}, {1_563, 600}, {100_000, 3},
	} {
		b.Run(fmt.Sprintf("devices=%d/per-minute=%d", c.devices, c.perMinute), func(b *testing.B) {
			const batch = 256
			f := newStreamFeeder(hotPathConfig(), c.devices, int64(c.perMinute*c.devices))
			// Start 2 s before a window boundary and warm up until a window has closed and
			// been released for reuse and every device has had a dozen readings, so that the
			// windows opened while measured reuse grown memory.
			f.n = -2_000 * f.perMinute / f.s.cfg.SizeMs
			for warm := 0; f.released == 0 || warm < 12*c.devices; warm += batch {
				f.nextBatch(batch)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				f.nextBatch(min(batch, b.N-i))
			}
			b.ReportMetric(float64(f.s.Keys()), "open-device-windows")
		})
	}
}
