package pipeline

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/pipelined/pipelined/internal/loadgen"
)

// fuzzWriter counts what a worker hands over as it arrives (a written window goes back to the
// stream for reuse, so it cannot be read afterwards) and writes it at once.
type fuzzWriter struct {
	mu                sync.Mutex
	inWindows, inLate int
	misplaced         []string
	blocks            int
}

func (w *fuzzWriter) Submit(_ context.Context, b *block) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.blocks++
	if b.window != nil {
		win := b.window
		for i := range win.Len() {
			w.inWindows += int(win.Count(i))
			if win.Count(i) == 0 {
				w.misplaced = append(w.misplaced, "empty row")
			}
		}
	} else {
		w.inLate += b.late.len()
	}
	b.done.Store(true)
	return nil
}

func (w *fuzzWriter) ReadProgress(context.Context, int) (Progress, error) {
	return Progress{Through: map[int64]Position{}, MaxEvent: math.MinInt64}, nil
}

// fuzzBytes takes bytes off the front of the fuzzer's input.
type fuzzBytes []byte

func (b *fuzzBytes) byte() byte {
	if len(*b) == 0 {
		return 0
	}
	c := (*b)[0]
	*b = (*b)[1:]
	return c
}

func (b *fuzzBytes) take(n int) []byte {
	n = min(n, len(*b))
	out := (*b)[:n]
	*b = (*b)[n:]
	return out
}

func (b *fuzzBytes) uint64() uint64 {
	var buf [8]byte
	copy(buf[:], b.take(8))
	return binary.LittleEndian.Uint64(buf[:])
}

// FuzzDecodeAndAggregate drives one partition's worker (decoder, window stream, partial and
// closing flushes, late readings, dead letters, acknowledgements) with an arbitrary stream:
// random payloads, records with arbitrary devices, times and values (NaN, infinities, times far
// in the past or future), and clock ticks, under settings picked by the fuzzer. It must never
// panic, every message must end up exactly once in a written window, among the late ones or
// among the dead letters, and after the graceful stop everything is acknowledged.
func FuzzDecodeAndAggregate(f *testing.F) {
	valid := func(dev int16, dt int16) []byte {
		return []byte{2, byte(dev), byte(dev >> 8), byte(dt), byte(dt >> 8)}
	}
	// The first byte of data sets the batch size, 1 + 2*byte: how many messages the worker
	// takes from its channel at once (more than prefetchBatch is handled in parts; a clock tick
	// ends a batch early).
	f.Add(uint8(0), append([]byte{0}, append(valid(1, 0), valid(2, 100)...)...))
	f.Add(uint8(9), append([]byte{1}, append(append(valid(1, 0), valid(1, 30)...), 3, 200, 0, 5, 1, 2, 3, 4, 5)...))
	f.Add(uint8(4), append([]byte{255}, append(valid(3, -500), 3, 255, 2, 7, 0, 0, 0)...))
	f.Add(uint8(0x32), []byte{2, 2, 1, 0, 0, 0, 0x82, 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x40})
	f.Add(uint8(0xff), []byte{0, 0, 0, 1, 40, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})

	f.Fuzz(func(t *testing.T, mode uint8, data []byte) {
		cfg := DefaultConfig()
		cfg.Window.IdleFlush = time.Duration(mode>>6) * 5 * time.Second
		cfg.Window.WatermarkDelay = time.Duration(mode&3) * 20 * time.Second
		cfg.Window.AllowedLateness = time.Duration(mode>>2&1) * 30 * time.Second
		if mode&8 != 0 {
			cfg.Window.Time = "processing"
		}
		if mode&16 != 0 {
			cfg.Window.LatePolicy = "drop"
		}
		if mode&32 != 0 {
			cfg.Limits.MaxKeysPerWindow = 1 + int(mode>>6)
		}
		cfg.Schema.MaxMessageBytes = 64
		dec, err := cfg.Decoder("")
		if err != nil {
			t.Fatal(err)
		}
		cons := &fakeConsumer{}
		w := &fuzzWriter{}
		m := newMetrics(cfg.Limits.MaxPendingRows, []string{"empty", "oversized", "truncated", "malformed", "trailing_bytes", ReasonFutureTime})
		wk := newWorker(0, &cfg, source{consumer: cons}, dec, w, &fakeDLQ{}, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
		clock := int64(1_700_000_000_000)
		wk.now = func() time.Time { return time.UnixMilli(clock) }
		ctx := context.Background()
		if err := wk.activate(ctx); err != nil {
			t.Fatal(err)
		}

		in := fuzzBytes(data)
		var (
			handled int
			last    Position
			base    = clock - 10*60_000
			batch   []pulsar.Message
			size    = 1 + 2*int(in.byte())
		)
		flush := func() {
			if err := wk.handleBatch(ctx, batch, clock); err != nil {
				t.Fatalf("handle messages %d..%d: %v", handled-len(batch)+1, handled, err)
			}
			batch = batch[:0]
		}
		for len(in) > 0 && handled < 2000 {
			op := in.byte()
			var payload []byte
			switch op & 3 {
			case 0, 1: // arbitrary bytes
				payload = in.take(int(in.byte()))
			case 2: // a record with fields from the input
				dev := int32(int16(binary.LittleEndian.Uint16(append(in.take(2), 0, 0))))
				ts := base + int64(int16(binary.LittleEndian.Uint16(append(in.take(2), 0, 0))))*1000
				if op&0x80 != 0 {
					ts = int64(in.uint64())
				}
				s := loadgen.Sample{SensorID: dev, Status: int32(op>>2&7) - 1, Timestamp: ts,
					Temperature: 20, Humidity: 50, Pressure: 1000, BatteryLevel: 90}
				if op&0x40 != 0 {
					s.Temperature = math.Float64frombits(in.uint64())
					s.BatteryLevel = math.Float64frombits(in.uint64())
				}
				payload = encode(t, s)
			case 3: // time passes; the worker's timer fires
				flush()
				clock += int64(in.byte()) * 100
				if err := wk.tick(ctx); err != nil {
					t.Fatalf("tick: %v", err)
				}
				continue
			}
			handled++
			id := pulsar.NewMessageID(1, int64(handled), -1, 0)
			last = positionOf(id)
			clock += int64(op >> 4)
			if batch = append(batch, &fakeMsg{id: id, payload: payload}); len(batch) == size {
				flush()
			}
		}
		flush()
		if err := wk.drain(ctx); err != nil {
			t.Fatalf("drain: %v", err)
		}

		var bad uint64
		for _, c := range m.decodeErrors {
			bad += c.Get()
		}
		late := m.late.Get()
		if got := uint64(w.inWindows) + late + bad; got != uint64(handled) {
			t.Fatalf("%d messages, but %d in written windows + %d late + %d undecodable = %d", handled, w.inWindows, late, bad, got)
		}
		if cfg.Window.LatePolicy == "table" && uint64(w.inLate) != late {
			t.Fatalf("%d late readings, %d written to the late table", late, w.inLate)
		}
		if len(w.misplaced) > 0 {
			t.Fatalf("written rows: %v", w.misplaced)
		}
		if handled > 0 && cons.lastAck() != last {
			t.Fatalf("after the stop, acknowledged through %v, want the last message %v", cons.lastAck(), last)
		}
		if len(wk.open) != 0 || len(wk.pending) != 0 || wk.stream.Keys() != 0 {
			t.Fatalf("after the stop: %d open windows, %d blocks pending, %d keys", len(wk.open), len(wk.pending), wk.stream.Keys())
		}
	})
}
