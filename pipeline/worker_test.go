package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/hamba/avro/v2"

	"github.com/pipelined/pipelined/internal/loadgen"
	"github.com/pipelined/pipelined/internal/schemas"
)

func encode(t testing.TB, s loadgen.Sample) []byte {
	t.Helper()
	b, err := avro.Marshal(avro.MustParse(schemas.SensorData), s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type fakeMsg struct {
	pulsar.Message
	id      pulsar.MessageID
	payload []byte
}

func (m *fakeMsg) ID() pulsar.MessageID          { return m.id }
func (m *fakeMsg) Payload() []byte               { return m.payload }
func (m *fakeMsg) Topic() string                 { return "t-partition-0" }
func (m *fakeMsg) Key() string                   { return "k" }
func (m *fakeMsg) Properties() map[string]string { return nil }
func (m *fakeMsg) EventTime() time.Time          { return time.Time{} }

type fakeConsumer struct {
	pulsar.Consumer
	mu   sync.Mutex
	acks []Position
}

func (c *fakeConsumer) AckIDCumulative(id pulsar.MessageID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.acks = append(c.acks, positionOf(id))
	return nil
}

func (c *fakeConsumer) lastAck() Position {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.acks) == 0 {
		return Position{}
	}
	return c.acks[len(c.acks)-1]
}

type fakeWriter struct {
	mu       sync.Mutex
	blocks   []*block
	hold     bool // leave blocks unwritten
	progress Progress
	reads    int
}

func (w *fakeWriter) Submit(_ context.Context, b *block) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.blocks = append(w.blocks, b)
	if !w.hold {
		b.done.Store(true)
	}
	return nil
}

// setHold makes later blocks stay unwritten (true) or be written at once (false).
func (w *fakeWriter) setHold(hold bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.hold = hold
}

func (w *fakeWriter) ReadProgress(context.Context, int) (Progress, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reads++
	if w.progress.Through == nil {
		return Progress{Through: map[int64]Position{}}, nil
	}
	return w.progress, nil
}

func (w *fakeWriter) written() (rows map[int64]uint32, partial int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	rows = map[int64]uint32{}
	for _, b := range w.blocks {
		if b.window == nil {
			continue
		}
		if b.partial {
			partial++
		}
		for i := range b.window.Len() {
			rows[b.window.Start] += b.window.Count(i)
		}
	}
	return rows, partial
}

type fakeDLQ struct{ reasons []string }

func (d *fakeDLQ) Publish(_ context.Context, _ int, _ pulsar.Message, reason string, _ error) error {
	d.reasons = append(d.reasons, reason)
	return nil
}

type rig struct {
	t    *testing.T
	wk   *worker
	ch   chan pulsar.ConsumerMessage
	cons *fakeConsumer
	w    *fakeWriter
	dlq  *fakeDLQ
	next int64
}

func newRig(t *testing.T, mod func(*Config)) *rig {
	cfg := DefaultConfig()
	cfg.Window.IdleFlush = 0
	if mod != nil {
		mod(&cfg)
	}
	dec, err := cfg.Decoder("")
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, ch: make(chan pulsar.ConsumerMessage, 1024), cons: &fakeConsumer{}, w: &fakeWriter{}, dlq: &fakeDLQ{}}
	m := newMetrics(cfg.Limits.MaxPendingRows, []string{"empty", "oversized", "truncated", "malformed", "trailing_bytes", ReasonFutureTime})
	r.wk = newWorker(0, &cfg, source{consumer: r.cons, ch: r.ch}, dec, r.w, r.dlq, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return r
}

// send queues one message with the next entry id and returns its position.
func (r *rig) send(payload []byte) Position {
	r.next++
	id := pulsar.NewMessageID(1, r.next, -1, 0)
	r.ch <- pulsar.ConsumerMessage{Message: &fakeMsg{id: id, payload: payload}}
	return positionOf(id)
}

func (r *rig) reading(dev int32, ts int64) Position {
	return r.send(encode(r.t, loadgen.Sample{SensorID: dev, Temperature: 20, Humidity: 50, Pressure: 1000, BatteryLevel: 90, Status: 1, Timestamp: ts}))
}

func (r *rig) start(ctx context.Context) (stop func() error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.wk.run(ctx, context.Background()) }()
	return func() error { cancel(); return <-done }
}

const minute = int64(60_000)

// Event time: a window is written when the watermark passes its end, and the partition is
// acknowledged only up to the message before the oldest open window.
func TestWorkerEventTimeClosesAndAcks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, nil)
		stop := r.start(t.Context())
		base := 100 * minute
		r.reading(1, base+1000)
		r.reading(2, base+2000)
		last0 := r.reading(1, base+minute-1)
		first1 := r.reading(1, base+minute+1000) // opens window 1; watermark still inside window 0
		_ = first1
		r.reading(2, base+minute+4000)
		closer := r.reading(3, base+minute+5000) // watermark = end of window 0: it closes
		synctest.Wait()
		time.Sleep(200 * time.Millisecond) // two ack intervals of fake time
		synctest.Wait()
		rows, _ := r.w.written()
		if rows[base] != 3 || len(rows) != 1 {
			t.Fatalf("written rows per window: got %v, want {%d: 3}", rows, base)
		}
		if got := r.cons.lastAck(); got != last0 {
			t.Fatalf("acked through %v, want %v (the message before window 1's first)", got, last0)
		}
		b := r.w.blocks[0]
		if b.cut != closer || b.partial {
			t.Fatalf("block cut at %v partial=%v, want cut at %v, not partial", b.cut, b.partial, closer)
		}
		// Shutdown writes window 1 as partial rows and acknowledges everything.
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		rows, partial := r.w.written()
		if rows[base+minute] != 3 || partial != 1 {
			t.Fatalf("after stop: rows %v partial %d, want 3 rows in window 1, one partial block", rows, partial)
		}
		if got := r.cons.lastAck(); got != closer {
			t.Fatalf("after stop acked through %v, want %v", got, closer)
		}
	})
}

// Nothing is acknowledged while its block is not in ClickHouse.
func TestWorkerAcksOnlyWhatIsWritten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, nil)
		r.w.hold = true
		stop := r.start(t.Context())
		base := 100 * minute
		r.reading(1, base)
		r.reading(1, base+minute+10_000) // closes window 0, whose block is held
		synctest.Wait()
		time.Sleep(time.Second)
		synctest.Wait()
		if got := r.cons.lastAck(); !got.IsZero() {
			t.Fatalf("acked %v while the block was not written", got)
		}
		r.w.mu.Lock()
		r.w.blocks[0].done.Store(true)
		r.w.mu.Unlock()
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		if got := r.cons.lastAck(); got != (Position{Ledger: 1, Entry: 1}) {
			t.Fatalf("after the block was written, acked %v, want 1:1:0", got)
		}
		r.w.setHold(false)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// Processing time: windows follow the clock, closed by the timer with no message arriving.
func TestWorkerProcessingTimeWindowsCloseOnTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, func(c *Config) { c.Window.Time = "processing" })
		stop := r.start(t.Context())
		// Align to a minute boundary of the fake clock.
		time.Sleep(time.Until(time.Now().Truncate(time.Minute).Add(time.Minute)))
		start := time.Now().UnixMilli()
		r.reading(1, 5) // event times are irrelevant here
		r.reading(2, 5)
		synctest.Wait()
		time.Sleep(30 * time.Second)
		r.reading(1, 5)
		synctest.Wait()
		if rows, _ := r.w.written(); len(rows) != 0 {
			t.Fatalf("window written before its minute ended: %v", rows)
		}
		time.Sleep(31 * time.Second)
		synctest.Wait()
		rows, partial := r.w.written()
		if rows[start] != 3 || partial != 0 {
			t.Fatalf("got rows %v partial %d, want 3 readings in the window starting %d", rows, partial, start)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// An idle partition writes its open windows as partial rows and acknowledges them.
func TestWorkerIdleFlush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, func(c *Config) { c.Window.IdleFlush = 10 * time.Second })
		stop := r.start(t.Context())
		r.reading(1, 100*minute)
		last := r.reading(2, 100*minute+1)
		synctest.Wait()
		time.Sleep(9 * time.Second)
		synctest.Wait()
		if rows, _ := r.w.written(); len(rows) != 0 {
			t.Fatalf("flushed before idle_flush: %v", rows)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		rows, partial := r.w.written()
		if rows[100*minute] != 2 || partial != 1 {
			t.Fatalf("got rows %v partial %d, want a partial block of 2", rows, partial)
		}
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		if got := r.cons.lastAck(); got != last {
			t.Fatalf("acked %v, want %v", got, last)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// After a restart, messages already in ClickHouse are skipped, the rest counted once, and the
// watermark resumes where it was, so readings late then are late now.
func TestWorkerReplaySkipsWhatIsWritten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := 100 * minute
		r := newRig(t, nil)
		r.w.progress = Progress{
			Through:  map[int64]Position{base: {Ledger: 1, Entry: 3}},
			Max:      Position{Ledger: 1, Entry: 3},
			MaxEvent: base + minute + 6000,
		}
		stop := r.start(t.Context())
		r.reading(1, base+1)             // 1:1 written
		r.reading(1, base+minute+10)     // 1:2 window 1, not written
		r.reading(2, base+2)             // 1:3 written
		r.reading(2, base+3)             // 1:4 window 0 closed by the restored watermark: late
		r.reading(3, base+minute+20)     // 1:5
		r.reading(3, base+2*minute+6000) // 1:6 closes window 1
		synctest.Wait()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		rows, _ := r.w.written()
		if rows[base] != 0 || rows[base+minute] != 2 || rows[base+2*minute] != 1 {
			t.Fatalf("got %v, want window 1: 2 readings, window 2: 1, window 0: none", rows)
		}
		if n := r.wk.m.skipped.Get(); n != 2 {
			t.Fatalf("skipped %d, want 2", n)
		}
		if n := r.wk.m.late.Get(); n != 1 {
			t.Fatalf("late %d, want 1", n)
		}
	})
}

// Bad messages go to the dead-letter topic with their reason and do not stall the partition.
func TestWorkerDeadLetters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, nil)
		stop := r.start(t.Context())
		r.send(nil)
		r.send([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}) // overlong varint
		good := encode(t, loadgen.Sample{SensorID: 1, Timestamp: 100 * minute})
		r.send(good[:len(good)-2])
		r.send(append(good, 1, 2, 3))
		last := r.send(good)
		synctest.Wait()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		want := []string{"empty", "malformed", "truncated", "trailing_bytes"}
		if len(r.dlq.reasons) != len(want) {
			t.Fatalf("dead-lettered %v, want %v", r.dlq.reasons, want)
		}
		for i := range want {
			if r.dlq.reasons[i] != want[i] {
				t.Fatalf("dead-lettered %v, want %v", r.dlq.reasons, want)
			}
		}
		if got := r.cons.lastAck(); got != last {
			t.Fatalf("acked %v, want %v", got, last)
		}
	})
}

// A backlog queued before the worker starts is taken up to drainBatch messages at a time and
// handled prefetchBatch at a time (read ahead, then aggregated in order): every reading lands in
// its window once, the bad payloads among them are dead-lettered in order, and when the channel
// closes mid-batch the worker handles what it took, writes its windows and acknowledges all.
func TestWorkerTakesQueuedMessagesInBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, nil)
		r.ch = make(chan pulsar.ConsumerMessage, 3*drainBatch)
		r.wk.src.ch = r.ch
		base := 100 * minute
		const n = 2*drainBatch + prefetchBatch + 7
		want := map[int64]uint32{}
		var bad []string
		var last Position
		for i := range n {
			if i%333 == 100 { // an overlong varint
				last = r.send([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
				bad = append(bad, "malformed")
				continue
			}
			ts := base + int64(i)*3*minute/n // three windows' worth, in order
			last = r.reading(int32(i%97), ts)
			want[ts-ts%minute]++
		}
		close(r.ch)
		done := make(chan error, 1)
		go func() { done <- r.wk.run(t.Context(), t.Context()) }()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		rows, _ := r.w.written()
		if len(rows) != len(want) {
			t.Fatalf("readings per window: got %v, want %v", rows, want)
		}
		for start, c := range want {
			if rows[start] != c {
				t.Fatalf("readings per window: got %v, want %v", rows, want)
			}
		}
		if fmt.Sprint(r.dlq.reasons) != fmt.Sprint(bad) {
			t.Fatalf("dead-lettered %v, want %v", r.dlq.reasons, bad)
		}
		if got := r.cons.lastAck(); got != last {
			t.Fatalf("acked through %v, want the last message %v", got, last)
		}
		// Counted once per batch, every message, the malformed ones too.
		if got := r.wk.pm.received.Get(); got != n {
			t.Fatalf("pipelined_messages_received_total: got %d, want %d", got, n)
		}
	})
}

// The worker's hot path (handleBatch: read ahead, decode, prefetch, aggregate, bookkeeping)
// allocates nothing once its window has grown.
func TestHandleBatchDoesNotAllocate(t *testing.T) {
	r := newRig(t, nil)
	if err := r.wk.activate(t.Context()); err != nil {
		t.Fatal(err)
	}
	const runs, devices = 10, 1000
	base := 100 * minute
	batches := make([][]pulsar.Message, runs+2) // AllocsPerRun runs once more to warm up
	for b := range batches {
		for k := range prefetchBatch {
			i := b*prefetchBatch + k
			payload := encode(t, loadgen.Sample{SensorID: int32(i % devices), Status: 1, Timestamp: base + int64(i)})
			batches[b] = append(batches[b], &fakeMsg{id: pulsar.NewMessageID(1, int64(i+1), -1, 0), payload: payload})
		}
	}
	ctx := t.Context()
	nowMs := base + minute
	if err := r.wk.handleBatch(ctx, batches[0], nowMs); err != nil { // opens the window
		t.Fatal(err)
	}
	next := 1
	allocs := testing.AllocsPerRun(runs, func() {
		if err := r.wk.handleBatch(ctx, batches[next], nowMs); err != nil {
			t.Fatal(err)
		}
		next++
	})
	if allocs != 0 {
		t.Fatalf("allocations per batch of %d messages: got %v, want 0", prefetchBatch, allocs)
	}
	if got := r.wk.stream.Keys(); got != devices {
		t.Fatalf("devices in the open window: got %d, want %d", got, devices)
	}
}

// A channel that closes with nothing queued (the consumer closed) ends the worker cleanly.
func TestWorkerStopsWhenItsChannelCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, nil)
		close(r.ch)
		if err := r.wk.run(t.Context(), t.Context()); err != nil {
			t.Fatal(err)
		}
		if rows, _ := r.w.written(); len(rows) != 0 {
			t.Fatalf("written %v from an empty channel", rows)
		}
	})
}

// A reading stamped far ahead of the clock goes to the dead-letter topic instead of moving the
// watermark; with window.max_future 0 it is aggregated and the readings after it are late.
func TestWorkerFutureTimeDeadLetters(t *testing.T) {
	for _, maxFuture := range []time.Duration{time.Hour, 0} {
		t.Run(fmt.Sprint("max_future=", maxFuture), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, func(c *Config) { c.Window.MaxFuture = maxFuture })
				stop := r.start(t.Context())
				now := time.Now().UnixMilli()
				base := now - now%minute
				r.reading(1, base+1000)
				r.reading(3, now+3*60*minute)
				r.reading(4, base+2000)
				last := r.reading(5, now+59*minute) // ahead, but within max_future: aggregated
				synctest.Wait()
				if err := stop(); err != nil {
					t.Fatal(err)
				}
				rows, _ := r.w.written()
				late := r.wk.m.late.Get()
				if maxFuture > 0 {
					if len(r.dlq.reasons) != 1 || r.dlq.reasons[0] != ReasonFutureTime {
						t.Fatalf("dead-lettered %v, want [%s]", r.dlq.reasons, ReasonFutureTime)
					}
					if rows[base] != 2 || rows[base+59*minute] != 1 || len(rows) != 2 || late != 0 {
						t.Fatalf("rows %v, %d late; want 2 rows in window %d (devices 1 and 4), 1 in %d (device 5), none late",
							rows, late, base, base+59*minute)
					}
				} else {
					if len(r.dlq.reasons) != 0 {
						t.Fatalf("dead-lettered %v with max_future 0", r.dlq.reasons)
					}
					if rows[base] != 1 || rows[base+3*60*minute] != 1 || len(rows) != 2 || late != 2 {
						t.Fatalf("rows %v, %d late; want 1 row in window %d, 1 in %d, devices 4 and 5 late",
							rows, late, base, base+3*60*minute)
					}
				}
				if got := r.cons.lastAck(); got != last {
					t.Fatalf("acked %v, want %v", got, last)
				}
			})
		})
	}
}

func TestFutureErrorNamesTheValue(t *testing.T) {
	err := futureError(1<<62, 1_000, time.Hour)
	if !strings.Contains(err.Error(), "4611686018427387904") || !strings.Contains(err.Error(), "window.max_future 1h0m0s") {
		t.Fatalf("error %q does not name the time and the setting", err)
	}
	err = futureError(1_000+2*3600_000, 1_000, time.Hour)
	if !strings.Contains(err.Error(), "2h0m0s ahead") {
		t.Fatalf("error %q does not say how far ahead", err)
	}
}

// Failover: when the partition moves away, its open windows are dropped (the new owner rebuilds
// them) and nothing more is written or acknowledged until it comes back.
func TestWorkerFailoverDropsAndResumes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, nil)
		stop := r.start(t.Context())
		r.reading(1, 100*minute)
		synctest.Wait()
		r.wk.BecameInactive(nil, "", 0)
		r.reading(2, 100*minute+1)
		r.reading(3, 105*minute) // would close window 0 if it were processed
		synctest.Wait()
		time.Sleep(time.Second)
		synctest.Wait()
		if rows, _ := r.w.written(); len(rows) != 0 {
			t.Fatalf("wrote %v while inactive", rows)
		}
		if got := r.cons.lastAck(); !got.IsZero() {
			t.Fatalf("acked %v while inactive", got)
		}
		r.wk.BecameActive(nil, "", 0)
		r.reading(4, 100*minute+2)
		synctest.Wait()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if reads := r.w.reads; reads != 2 {
			t.Fatalf("progress read %d times, want 2 (start, and on becoming active)", reads)
		}
		if rows, _ := r.w.written(); rows[100*minute] != 1 {
			t.Fatalf("got %v, want only the reading after becoming active", rows)
		}
	})
}

func TestPositionOrderAndPacking(t *testing.T) {
	ps := []Position{{1, 0, 0}, {1, 0, 5}, {1, 7, 0}, {2, 0, 0}, {1 << 40, 1 << 40, 1<<batchBits - 1}}
	for i := range ps {
		if got := positionFrom(ps[i].UInt128()); got != ps[i] {
			t.Fatalf("round trip of %v gave %v", ps[i], got)
		}
		for j := range ps {
			if ps[i].Less(ps[j]) != (i < j) {
				t.Fatalf("%v.Less(%v) = %v", ps[i], ps[j], ps[i].Less(ps[j]))
			}
			a, b := ps[i].UInt128(), ps[j].UInt128()
			packedLess := a.High < b.High || (a.High == b.High && a.Low < b.Low)
			if packedLess != (i < j) {
				t.Fatalf("packed order of %v and %v is wrong", ps[i], ps[j])
			}
		}
	}
	_ = errors.New
}

// Being told "active" again while the partition is ours keeps its state: the broker does not
// redeliver what we hold, so dropping it would lose it.
func TestWorkerRepeatedActiveKeepsState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, nil)
		stop := r.start(t.Context())
		r.reading(1, 100*minute)
		synctest.Wait()
		r.wk.BecameActive(nil, "", 0)
		r.reading(2, 100*minute+1)
		synctest.Wait()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if rows, _ := r.w.written(); rows[100*minute] != 2 {
			t.Fatalf("got %v, want both readings", rows)
		}
		if reads := r.w.reads; reads != 1 {
			t.Fatalf("progress read %d times, want 1", reads)
		}
	})
}

// A block cut before the partition moved away is stale: the writer must not write it, since
// the new owner replays its messages.
func TestWorkerBlocksGoStaleWhenThePartitionMoves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, nil)
		r.w.hold = true
		stop := r.start(t.Context())
		r.reading(1, 100*minute)
		r.reading(1, 102*minute) // closes window 100
		synctest.Wait()
		r.w.mu.Lock()
		b := r.w.blocks[0]
		r.w.mu.Unlock()
		if b.stale() {
			t.Fatal("block stale before the partition moved")
		}
		r.wk.BecameInactive(nil, "", 0)
		if !b.stale() {
			t.Fatal("block not stale after the partition moved")
		}
		r.wk.BecameActive(nil, "", 0)
		if !b.stale() {
			t.Fatal("block of the earlier ownership fresh again after the partition came back")
		}
		r.w.setHold(false)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// A redelivery (the broker going back to its acknowledged position) rebuilds the open windows
// from the redelivered messages: nothing is counted twice, nothing skipped.
func TestWorkerRedeliveryRebuilds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, nil)
		stop := r.start(t.Context())
		payloads := make([][]byte, 6)
		for i := range payloads {
			payloads[i] = encode(t, loadgen.Sample{SensorID: int32(i), Status: 1, Timestamp: 100*minute + int64(i)})
		}
		for _, p := range payloads { // entries 1..6
			r.send(p)
		}
		synctest.Wait()
		r.next = 0 // nothing was acknowledged: the broker sends entries 1..6 again
		for _, p := range payloads {
			r.send(p)
		}
		synctest.Wait()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		rows, _ := r.w.written()
		if rows[100*minute] != 6 {
			t.Fatalf("got %v, want each of the 6 readings once", rows)
		}
		if n := r.wk.m.rewinds.Get(); n != 1 {
			t.Fatalf("rewinds %d, want 1", n)
		}
	})
}

// handleBatch prefetches, for each message, the lines of its object that Payload and ID read
// (its first 40 bytes) and its ID's object.
func TestReadAheadAddresses(t *testing.T) {
	msgs := []pulsar.Message{
		&fakeMsg{id: pulsar.NewMessageID(1, 2, -1, 0), payload: []byte{1}},
		&fakeMsg{id: pulsar.NewMessageID(1, 3, -1, 0), payload: []byte{2}},
	}
	addrs := make([]uintptr, prefetchAddrs)
	var want []uintptr
	for _, m := range msgs {
		p := reflect.ValueOf(m).Pointer()
		want = append(want, p, p+39) // the first and the 40th byte
	}
	if got := messageAddrs(msgs, addrs); !slices.Equal(got, want) {
		t.Errorf("message addresses %x, want %x", got, want)
	}
	ah := make([]ahead, len(msgs))
	want = want[:0]
	for k, m := range msgs {
		ah[k].id = m.ID()
		want = append(want, reflect.ValueOf(m.ID()).Pointer())
	}
	if got := idAddrs(ah, addrs); !slices.Equal(got, want) {
		t.Errorf("ID addresses %x, want %x", got, want)
	}
}

// TestPayloadsAheadSchedule checks the decode loop's schedule: every payload of a batch is
// asked for once, before it is decoded, and past the first groups at least a group ahead.
func TestPayloadsAheadSchedule(t *testing.T) {
	for _, n := range []int{1, 15, 16, 17, 47, 48, 49, 100, prefetchBatch} {
		asked := make([]int, n) // the k at which each payload was asked for, -1 for not yet
		for i := range asked {
			asked[i] = -1
		}
		for k := 0; k < n; k += payloadGroup {
			from, to := payloadsAhead(k, n)
			for i := from; i < to; i++ {
				if asked[i] >= 0 {
					t.Fatalf("n=%d: payload %d asked for at %d and again at %d", n, i, asked[i], k)
				}
				asked[i] = k
			}
		}
		for i, k := range asked {
			switch {
			case k < 0:
				t.Errorf("n=%d: payload %d never asked for", n, i)
			case k > i:
				t.Errorf("n=%d: payload %d asked for at %d, after it is decoded", n, i, k)
			case i >= 3*payloadGroup && i-k < payloadGroup:
				t.Errorf("n=%d: payload %d asked for at %d, less than a group ahead", n, i, k)
			}
		}
	}
}

// TestPayloadLines checks that the addresses asked for cover the first payloadLineBytes of a
// payload and its last byte, line by line, and stay inside it.
func TestPayloadLines(t *testing.T) {
	buf := make([]byte, 2048)
	line := int(-uintptr(unsafe.Pointer(&buf[0])) & 63) // buf[line] starts a cache line
	for _, size := range []int{1, 41, 63, 64, 65, 127, 128, 129, 192, 256, 257, 300, 1000} {
		// At offsets in a line where the payload's lines fall differently.
		for _, off := range []int{0, 1, 2, 62, 63} {
			p := buf[line+off : line+off+size]
			addrs := make([]uintptr, 3+payloadMaxLines)
			end := payloadLines(p, addrs, 3)
			if end-3 > payloadMaxLines || end-3 < 1 {
				t.Fatalf("size %d: %d addresses, want 1..%d", size, end-3, payloadMaxLines)
			}
			p0 := uintptr(unsafe.Pointer(&p[0]))
			lines := map[uintptr]bool{}
			for _, a := range addrs[3:end] {
				if a < p0 || a >= p0+uintptr(size) {
					t.Fatalf("size %d, offset %d: address %#x outside the payload [%#x, %#x)", size, off, a, p0, p0+uintptr(size))
				}
				lines[a&^63] = true
			}
			for o := 0; o < size; o++ {
				if a := p0 + uintptr(o); (o < payloadLineBytes || o == size-1) && !lines[a&^63] {
					t.Errorf("size %d, offset %d: the line of byte %d not asked for", size, off, o)
				}
			}
		}
	}
	if end := payloadLines(nil, nil, 0); end != 0 {
		t.Errorf("empty payload: %d addresses, want none", end)
	}
}
