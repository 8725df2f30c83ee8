package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/pipelined/pipelined/agg"
	"github.com/pipelined/pipelined/internal/avrodec"
	"github.com/pipelined/pipelined/internal/prefetch"
)

// lateBatchRows is how many late readings a partition gathers before writing them.
const lateBatchRows = 10000

// drainBatch bounds how many messages a worker takes without looking at its timer and context.
const drainBatch = 1024

// prefetchBatch is how many queued messages a worker reads ahead (IDs, payloads, decoded
// readings, window rows) before aggregating them, so that their cache misses overlap
// (worker.handleBatch). 256 readings are 22 KiB and their rows 32 KiB: more than the L1 cache,
// but they stay in the core's L2 until they are added (batches of 32-128 measured no faster).
const prefetchBatch = 256

// mark is a message a partition may acknowledge up to: the message just before something that
// is not yet in ClickHouse. A zero mark (no ID) means nothing before it was seen in this epoch.
type mark struct {
	pos     Position
	id      pulsar.MessageID
	seq     uint64 // messages processed in this epoch up to and including this one
	eventMs int64  // its event time, 0 if it had none
}

// openWindow is an open window's bookkeeping: where it began in the partition.
type openWindow struct {
	w     *agg.Window
	first Position
	prev  mark
}

// inflight is a block handed to the writer and not yet confirmed.
type inflight struct {
	b    *block
	prev mark
}

// source is what a worker reads from: one partition's consumer and its channel.
type source struct {
	consumer pulsar.Consumer
	ch       <-chan pulsar.ConsumerMessage
}

// worker owns one partition: its consumer's channel, decoder, window stream, the blocks it has
// handed to the writer and its acknowledgements. Nothing it touches per message is shared, so
// the hot path takes no lock.
type worker struct {
	p      int
	cfg    *Config
	src    source
	dec    *avrodec.Decoder
	stream *agg.Stream
	writer blockWriter
	dlq    deadLetter
	m      *Metrics
	pm     *partitionMetrics
	log    *slog.Logger
	now    func() time.Time

	// Failover: the listener bumps epoch and sets active; the worker notices per message.
	epoch     atomic.Int64 // bumped on every listener call: one load per message tells if any came
	lost      atomic.Int64 // bumped when the partition goes to another consumer
	activeSig atomic.Bool
	seenEpoch int64
	seenLost  int64
	active    bool

	skipping bool     // replayed messages may already be in ClickHouse
	progress Progress // what ClickHouse held when this epoch began
	last     mark     // the last message processed in this epoch
	seq      uint64   // messages processed in this epoch
	acked    mark
	open     []openWindow
	pending  []inflight
	late     *lateRows
	latePrev mark
	lateAt   time.Time
	lastMsg  time.Time
	bytes    int
	received int // messages handled since handleBatch last added them to pm.received

	// The batch being handled: messages taken from the channel, read ahead of aggregation.
	msgs     []pulsar.Message
	ahead    []ahead
	payloads [][]byte // the messages' payloads, as handleBatch's decode loop asks for them
	decoded  []bool   // whether each payload decoded; false: it is not a valid record
	rs       []agg.Reading
	addrs    [prefetchAddrs]uintptr // what a pass of handleBatch prefetches

	reportedWindows, reportedKeys int64
}

// blockWriter is the writer as a worker sees it.
type blockWriter interface {
	Submit(ctx context.Context, b *block) error
	ReadProgress(ctx context.Context, p int) (Progress, error)
}

// deadLetter publishes a message that cannot be aggregated, returning once it is durable.
type deadLetter interface {
	Publish(ctx context.Context, p int, msg pulsar.Message, reason string, cause error) error
}

func newWorker(p int, cfg *Config, src source, dec *avrodec.Decoder, w blockWriter, dlq deadLetter, m *Metrics, log *slog.Logger) *worker {
	wk := &worker{
		p: p, cfg: cfg, src: src, dec: dec, writer: w, dlq: dlq, m: m,
		pm:  m.partition(p),
		log: log.With("partition", p),
		now: time.Now,

		msgs:     make([]pulsar.Message, 0, prefetchBatch),
		ahead:    make([]ahead, prefetchBatch),
		payloads: make([][]byte, prefetchBatch),
		decoded:  make([]bool, prefetchBatch),
		rs:       make([]agg.Reading, prefetchBatch),
	}
	wk.activeSig.Store(true)
	wk.active = true // until the client says otherwise (Exclusive never does)
	wk.reset()
	return wk
}

// BecameActive is called by the Pulsar client when this process gets the partition.
func (wk *worker) BecameActive(_ pulsar.Consumer, _ string, _ int32) {
	wk.activeSig.Store(true)
	wk.epoch.Add(1)
}

// BecameInactive is called by the Pulsar client when another consumer gets the partition.
func (wk *worker) BecameInactive(_ pulsar.Consumer, _ string, _ int32) {
	wk.activeSig.Store(false)
	wk.lost.Add(1)
	wk.epoch.Add(1)
}

// reset forgets the partition's state: a new epoch begins from what ClickHouse holds.
// Blocks already handed to the writer are written, but no longer acknowledged from here.
func (wk *worker) reset() {
	wk.stream = agg.NewStream(wk.cfg.StreamConfig())
	wk.open = wk.open[:0]
	wk.pending = wk.pending[:0]
	wk.late = &lateRows{}
	wk.last = mark{}
	wk.acked = mark{}
	wk.seq = 0
	wk.skipping = false
}

// activate starts an epoch: reads what ClickHouse already holds of the partition, so replayed
// messages that are already written are skipped and the watermark resumes where it was.
func (wk *worker) activate(ctx context.Context) error {
	wk.reset()
	t0 := wk.now()
	pr, err := wk.writer.ReadProgress(ctx, wk.p)
	if err != nil {
		return err
	}
	wk.log.Debug("progress read", "took", wk.now().Sub(t0), "windows", len(pr.Through))
	wk.progress = pr
	wk.skipping = len(pr.Through) > 0
	if wk.cfg.Window.Time == "event" && len(pr.Through) > 0 {
		wk.stream.Restore(pr.MaxEvent)
	}
	wk.lastMsg = wk.now()
	if wk.skipping {
		wk.log.Info("partition resumed", "windows_written", len(pr.Through), "written_through", pr.Max.String(), "watermark_ms", wk.stream.Watermark())
	}
	return nil
}

// rewind restarts the epoch from ClickHouse after the broker redelivers from its
// acknowledged position: blocks in flight land first, so the progress read covers them and the
// redelivered messages they hold are skipped; open windows are dropped and rebuilt.
func (wk *worker) rewind(ctx context.Context) error {
	wk.m.rewinds.Inc()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for wk.ack(); len(wk.pending) > 0; wk.ack() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return wk.activate(ctx)
}

// run consumes until ctx ends, then writes what it holds and acknowledges it (within stopCtx).
func (wk *worker) run(ctx, stopCtx context.Context) error {
	if err := wk.activate(ctx); err != nil {
		return wk.stopped(ctx, stopCtx, err) // a stop while reading the progress is a stop
	}
	tick := time.NewTicker(wk.cfg.Pulsar.AckInterval)
	defer tick.Stop()
	for {
		select {
		case cm, ok := <-wk.src.ch:
			if !ok {
				return wk.drain(stopCtx)
			}
			nowMs := wk.now().UnixMilli()
			// Take what is queued, up to drainBatch, without going back to the timer and
			// context, and handle it prefetchBatch messages at a time.
			for taken := 1; ; taken++ {
				wk.msgs = append(wk.msgs, cm.Message)
				more := false
				if taken < drainBatch {
					select {
					case cm, ok = <-wk.src.ch:
						more = ok
					default:
					}
				}
				if len(wk.msgs) == prefetchBatch || !more {
					err := wk.handleBatch(ctx, wk.msgs, nowMs)
					clear(wk.msgs)
					wk.msgs = wk.msgs[:0]
					if err != nil {
						return wk.stopped(ctx, stopCtx, err)
					}
				}
				if !more {
					break
				}
			}
			if !ok {
				return wk.drain(stopCtx)
			}
			wk.lastMsg = wk.now()
		case <-tick.C:
			if err := wk.tick(ctx); err != nil {
				return wk.stopped(ctx, stopCtx, err)
			}
		case <-ctx.Done():
			return wk.drain(stopCtx)
		}
	}
}

func (wk *worker) stopped(ctx, stopCtx context.Context, err error) error {
	if ctx.Err() != nil {
		return wk.drain(stopCtx)
	}
	return err
}

// ahead is what handleBatch reads of a message before handling it.
type ahead struct {
	id  pulsar.MessageID
	pos Position
}

// handleBatch is the hot path. It reads msgs ahead, prefetchBatch at a time: their IDs and
// positions, then their payloads, decoded a group at a time (avrodec Decoder.DecodeBatch)
// while the payloads further on are asked for (payloadsAhead); then it handles the messages
// one by one, in order, asking ahead for the window index slots and rows of the readings to
// come (agg.Stream.PrefetchAhead). Each pass touches one kind of memory the client or the
// window wrote long before (message objects, IDs, payloads, rows), for every message of the
// batch, so the cache misses overlap instead of coming one after another; the message objects
// and the IDs are asked for with prefetch instructions (internal/prefetch) first, since the
// passes that read them do more per message than a loop of loads keeps in flight. Reading
// ahead is pure, so it changes nothing but where the misses fall.
func (wk *worker) handleBatch(ctx context.Context, msgs []pulsar.Message, nowMs int64) error {
	defer wk.countReceived() // once per batch, not an atomic add per message
	for len(msgs) > 0 {
		n := min(len(msgs), prefetchBatch)
		rs, ah := wk.rs[:n], wk.ahead[:n]
		prefetch.Lines(messageAddrs(msgs[:n], wk.addrs[:]))
		for k, msg := range msgs[:n] {
			ah[k].id = msg.ID()
		}
		prefetch.Lines(idAddrs(ah, wk.addrs[:]))
		for k := range ah {
			ah[k].pos = positionOf(ah[k].id)
		}
		bs, ok := wk.payloads[:n], wk.decoded[:n]
		for k := 0; k < n; k += payloadGroup {
			from, to := payloadsAhead(k, n)
			a := 0
			for j, m := range msgs[from:to] {
				bs[from+j] = m.Payload()
				a = payloadLines(bs[from+j], wk.addrs[:], a)
			}
			prefetch.Lines(wk.addrs[:a])
			end := min(k+payloadGroup, n)
			wk.dec.DecodeBatch(bs[k:end], rs[k:end], ok[k:end])
		}
		for k, msg := range msgs[:n] {
			wk.stream.PrefetchAhead(rs, k)
			if err := wk.handle(ctx, msg, &ah[k], ok[k], &rs[k], nowMs); err != nil {
				clear(ah)
				clear(bs)
				return err
			}
		}
		clear(ah)
		clear(bs)
		msgs = msgs[n:]
	}
	return nil
}

// countReceived adds the messages handled since it last ran to pipelined_messages_received_total.
func (wk *worker) countReceived() {
	if wk.received > 0 {
		wk.pm.received.Add(wk.received)
		wk.received = 0
	}
}

// prefetchAddrs is the room for the addresses handleBatch prefetches at a time: two per message,
// or payloadMaxLines per payload of three groups.
const prefetchAddrs = 2 * prefetchBatch

const _ = uint(prefetchAddrs - 3*payloadGroup*payloadMaxLines) // a compile error if there is no room

// dataAddr returns the data word of the interface value at v: the address of the object a
// pointer-shaped dynamic value (every pulsar.Message and MessageID the client makes) points to.
// An interface value is two words, its type and its data.
func dataAddr(v unsafe.Pointer) uintptr {
	return (*[2]uintptr)(v)[1]
}

// messageHead is how many bytes of a message object Payload and ID read: the client's message
// keeps its payload slice and its ID interface first (patch 6 of
// internal/third_party/pulsar-client-go, whose layout test checks it).
const messageHead = 40

// messageAddrs writes to addrs the first and last byte of each message object's head, which
// may straddle two lines.
func messageAddrs(msgs []pulsar.Message, addrs []uintptr) []uintptr {
	addrs = addrs[:2*len(msgs)]
	for k := range msgs {
		p := dataAddr(unsafe.Pointer(&msgs[k]))
		addrs[2*k], addrs[2*k+1] = p, p+messageHead-1
	}
	return addrs
}

// idAddrs writes to addrs the object of each message's ID, which positionOf reads through.
func idAddrs(ah []ahead, addrs []uintptr) []uintptr {
	addrs = addrs[:len(ah)]
	for k := range ah {
		addrs[k] = dataAddr(unsafe.Pointer(&ah[k].id))
	}
	return addrs
}

// payloadGroup is how many payloads handleBatch's decode loop asks for at a time, and how far
// ahead: at the start of each group of payloadGroup messages, the payloads of the group two
// ahead (payloadsAhead). Decoding a group takes longer than a payload takes to come from
// memory, and the loads overlap the decoding instead of stalling a pass of their own.
const payloadGroup = 16

// payloadsAhead returns the messages [from, to) of a batch of n whose payloads the decode loop
// asks for before decoding message k, a multiple of payloadGroup: the group two ahead, and at
// k == 0 the first three groups.
func payloadsAhead(k, n int) (from, to int) { return prefetch.Ahead(k, n, payloadGroup, 2) }

// payloadLines writes to addrs from a an address in each cache line of p's first
// payloadLineBytes bytes, and its last byte, and returns where it stopped (at most
// a+payloadMaxLines).
func payloadLines(p []byte, addrs []uintptr, a int) int {
	if len(p) == 0 {
		return a
	}
	p0 := prefetch.Addr(unsafe.SliceData(p))
	last := p0 + uintptr(len(p)) - 1
	end := min(last, p0+payloadLineBytes-1)
	addrs[a] = p0
	a++
	for l := p0&^63 + 64; l <= end; l += 64 {
		addrs[a] = l
		a++
	}
	if last > end {
		addrs[a] = last
		a++
	}
	return a
}

// How much of a payload handleBatch asks for: the lines of its first 256 bytes (the decoder
// reads a payload in order, and past them the processor's own prefetcher has the stream) and
// the line of its last byte.
const (
	payloadLineBytes = 256
	payloadMaxLines  = payloadLineBytes/64 + 2 // 256 bytes from anywhere in a line, and the last byte
)

// handle takes one message, read ahead into a and r (decoded: whether its payload decoded).
func (wk *worker) handle(ctx context.Context, msg pulsar.Message, a *ahead, decoded bool, r *agg.Reading, nowMs int64) error {
	if e := wk.epoch.Load(); e != wk.seenEpoch {
		if err := wk.changeEpoch(ctx, e, true); err != nil {
			return err
		}
	}
	if !wk.active {
		return nil // another consumer owns the partition now; it gets this message too
	}
	id, pos := a.id, a.pos
	if wk.last.id != nil && !wk.last.pos.Less(pos) {
		// The broker went back (a reconnect, an active-consumer change): it sends again what it
		// has not seen acknowledged. What we hold may be ahead of or apart from that stream (a
		// consumer's queue can still hold messages from before the change), so start over from
		// what ClickHouse holds, once our blocks in flight have landed.
		if err := wk.rewind(ctx); err != nil {
			return err
		}
	}
	payload := msg.Payload()
	wk.received++
	wk.bytes += len(payload)
	if !decoded {
		err := wk.dec.Decode(payload, r) // again, for the error: the decoder reuses it
		if err == nil {
			panic("pipeline: a payload that failed to decode decoded the second time")
		}
		var de *avrodec.Error
		reason := "malformed"
		if errors.As(err, &de) {
			reason = de.Reason
		}
		return wk.deadLetter(ctx, msg, a, reason, err)
	}
	at := r.TimeMs
	if wk.cfg.Window.Time == "processing" {
		at = nowMs
	} else if mf := wk.cfg.Window.MaxFuture; mf > 0 && at > nowMs+mf.Milliseconds() {
		return wk.deadLetter(ctx, msg, a, ReasonFutureTime, futureError(at, nowMs, mf))
	}
	if wk.skipping && wk.written(pos, at) {
		wk.m.skipped.Inc()
		wk.seq++
		wk.last = mark{pos, id, wk.seq, r.TimeMs}
		return nil
	}
	w, out := wk.stream.Add(r, at)
	switch out {
	case agg.Late:
		wk.m.late.Inc()
		if wk.cfg.Window.LatePolicy == "table" {
			if wk.late.len() == 0 {
				wk.latePrev, wk.lateAt = wk.last, wk.now()
			}
			wk.late.add(pos, r, nowMs)
		}
	case agg.Opened:
		wk.open = append(wk.open, openWindow{w: w, first: pos, prev: wk.last})
	}
	wk.seq++
	wk.last = mark{pos, id, wk.seq, r.TimeMs}
	for c := wk.stream.PopClosed(); c != nil; c = wk.stream.PopClosed() {
		if err := wk.emit(ctx, c, false); err != nil {
			return err
		}
	}
	if w != nil && w.Len() >= wk.cfg.Limits.MaxKeysPerWindow {
		wk.stream.Detach(w)
		if err := wk.emit(ctx, w, true); err != nil {
			return err
		}
	}
	if wk.late.len() >= lateBatchRows {
		return wk.emitLate(ctx)
	}
	return nil
}

// ReasonFutureTime is the dead-letter reason (and pipelined_decode_errors_total's reason label)
// of a reading stamped further ahead of the clock than window.max_future.
const ReasonFutureTime = "future_time"

func futureError(at, nowMs int64, maxFuture time.Duration) error {
	ahead := fmt.Sprintf("%d ms", at-nowMs)
	if at-nowMs < math.MaxInt64/int64(time.Millisecond) {
		ahead = (time.Duration(at-nowMs) * time.Millisecond).String()
	}
	return fmt.Errorf("event time %d (%s) is %s ahead of this host's clock, more than window.max_future %s",
		at, time.UnixMilli(at).UTC().Format(time.RFC3339Nano), ahead, maxFuture)
}

// deadLetter sends a message that cannot be aggregated to the dead-letter topic, counted by
// reason; it is acknowledged with the messages around it.
func (wk *worker) deadLetter(ctx context.Context, msg pulsar.Message, a *ahead, reason string, cause error) error {
	wk.m.decodeError(reason)
	if err := wk.dlq.Publish(ctx, wk.p, msg, reason, cause); err != nil {
		return err
	}
	wk.seq++
	wk.last = mark{a.pos, a.id, wk.seq, 0}
	return nil
}

// written reports whether the message at pos (time at) is already in ClickHouse, from the
// progress read when the epoch began. Once past everything written, it stops looking.
func (wk *worker) written(pos Position, at int64) bool {
	if wk.progress.Max.Less(pos) {
		wk.skipping = false
		return false
	}
	if wk.cfg.Window.Time == "processing" {
		return true // processing-time blocks cover contiguous runs of the partition
	}
	through, ok := wk.progress.Through[wk.stream.WindowStart(at)]
	return ok && !through.Less(pos)
}

// changeEpoch applies what the Failover listener said. Losing the partition drops its state
// (the new owner replays it). Getting it back after a loss starts a new epoch from what
// ClickHouse holds, at the first message, so the previous owner has had time to finish. Being
// told "active" while already active changes nothing: the state is still ours.
func (wk *worker) changeEpoch(ctx context.Context, e int64, atMessage bool) error {
	lost := wk.lost.Load()
	if !wk.activeSig.Load() {
		wk.seenEpoch, wk.seenLost = e, lost
		if wk.active {
			wk.log.Info("partition moved to another consumer; dropping its open windows")
		}
		wk.active = false
		wk.reset() // blocks already handed over are dropped by the writer (see block.stale)
		return nil
	}
	if wk.active && lost == wk.seenLost {
		wk.seenEpoch = e
		return nil
	}
	if !atMessage {
		return nil
	}
	wk.seenEpoch, wk.seenLost = e, lost
	wk.log.Info("partition assigned to this consumer")
	wk.active = true
	return wk.activate(ctx)
}

// emit hands a window to the writer as a block cut at the last processed message.
func (wk *worker) emit(ctx context.Context, w *agg.Window, partial bool) error {
	var ow openWindow
	for i := range wk.open {
		if wk.open[i].w == w {
			ow = wk.open[i]
			wk.open = append(wk.open[:i], wk.open[i+1:]...)
			break
		}
	}
	if ow.w == nil {
		panic("pipeline: emitted window was not open")
	}
	if partial {
		wk.m.partialFlushes.Inc()
	}
	b := &block{partition: wk.p, window: w, partial: partial, first: ow.first, cut: wk.last.pos, closedAt: wk.now(),
		owner: &wk.lost, epoch: wk.seenLost}
	wk.pending = append(wk.pending, inflight{b: b, prev: ow.prev})
	return wk.writer.Submit(ctx, b)
}

func (wk *worker) emitLate(ctx context.Context) error {
	if wk.late.len() == 0 {
		return nil
	}
	b := &block{partition: wk.p, late: wk.late, first: wk.late.pos[0], cut: wk.last.pos, lateSizeMs: wk.cfg.Window.Size.Milliseconds(),
		owner: &wk.lost, epoch: wk.seenLost}
	wk.pending = append(wk.pending, inflight{b: b, prev: wk.latePrev})
	wk.late = &lateRows{}
	return wk.writer.Submit(ctx, b)
}

// flushOpen writes every open window as partial rows, so everything processed can be
// acknowledged: on an idle partition and on shutdown.
func (wk *worker) flushOpen(ctx context.Context) error {
	for len(wk.open) > 0 {
		w := wk.open[0].w
		wk.stream.Detach(w)
		if err := wk.emit(ctx, w, true); err != nil {
			return err
		}
	}
	return wk.emitLate(ctx)
}

// tick does the periodic work: reap written blocks, advance processing time, flush an idle
// partition and late readings, acknowledge, publish gauges.
func (wk *worker) tick(ctx context.Context) error {
	if e := wk.epoch.Load(); e != wk.seenEpoch {
		if err := wk.changeEpoch(ctx, e, false); err != nil {
			return err
		}
	}
	now := wk.now()
	if wk.bytes > 0 {
		wk.m.bytesIn.Add(wk.bytes)
		wk.bytes = 0
	}
	if wk.active {
		if wk.cfg.Window.Time == "processing" {
			wk.stream.AdvanceTo(now.UnixMilli())
			for c := wk.stream.PopClosed(); c != nil; c = wk.stream.PopClosed() {
				if err := wk.emit(ctx, c, false); err != nil {
					return err
				}
			}
		}
		if idle := wk.cfg.Window.IdleFlush; idle > 0 && len(wk.open) > 0 && now.Sub(wk.lastMsg) >= idle {
			if err := wk.flushOpen(ctx); err != nil {
				return err
			}
		}
		if wk.late.len() > 0 && now.Sub(wk.lateAt) >= time.Second {
			if err := wk.emitLate(ctx); err != nil {
				return err
			}
		}
		wk.ack()
	}
	wins, keys := int64(len(wk.open)), int64(wk.stream.Keys())
	wk.m.openWindows.Add(wins - wk.reportedWindows)
	wk.m.openKeys.Add(keys - wk.reportedKeys)
	wk.reportedWindows, wk.reportedKeys = wins, keys
	return nil
}

// ackMark returns how far the partition may be acknowledged: up to just before the oldest
// message that is in an open window, an unwritten block or the late buffer.
func (wk *worker) ackMark() mark {
	target := wk.last
	lower := func(m mark) {
		if m.id == nil || m.pos.Less(target.pos) {
			target = m
		}
	}
	for _, o := range wk.open {
		lower(o.prev)
	}
	for _, f := range wk.pending {
		lower(f.prev)
	}
	if wk.late.len() > 0 {
		lower(wk.latePrev)
	}
	return target
}

// ack reaps written blocks and acknowledges cumulatively what is durable.
func (wk *worker) ack() {
	if wk.lost.Load() != wk.seenLost {
		return // the partition moved: what we hold is not ours to acknowledge
	}
	kept := wk.pending[:0]
	for _, f := range wk.pending {
		if f.b.done.Load() {
			if f.b.window != nil {
				wk.stream.Release(f.b.window)
			}
			continue
		}
		kept = append(kept, f)
	}
	clear(wk.pending[len(kept):])
	wk.pending = kept
	t := wk.ackMark()
	if t.id == nil || (wk.acked.id != nil && !wk.acked.pos.Less(t.pos)) {
		return
	}
	if err := wk.src.consumer.AckIDCumulative(t.id); err != nil {
		wk.log.Warn("acknowledge failed; will retry", "position", t.pos.String(), "err", err.Error())
		return
	}
	wk.pm.acked.Add(int(t.seq - wk.acked.seq))
	wk.acked = t
	if t.eventMs > 0 {
		wk.pm.ackedEventMs.Store(t.eventMs)
	}
}

// drain is the graceful stop: write every open window as partial rows, wait until the writer
// has them all, acknowledge, return. If stopCtx ends first, what is not written stays
// unacknowledged and is replayed by the next run.
func (wk *worker) drain(stopCtx context.Context) error {
	if !wk.active {
		return nil
	}
	if err := wk.flushOpen(stopCtx); err != nil {
		if stopCtx.Err() != nil {
			err = context.Cause(stopCtx)
		}
		return fmt.Errorf("partition %d: flush on stop: %w", wk.p, err)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if wk.lost.Load() != wk.seenLost {
			return nil // the partition moved away: its new owner replays what is not written
		}
		wk.ack()
		if len(wk.pending) == 0 {
			return nil
		}
		select {
		case <-tick.C:
		case <-stopCtx.Done():
			return fmt.Errorf("partition %d: %d block(s) not written before the shutdown timeout: %w", wk.p, len(wk.pending), context.Cause(stopCtx))
		}
	}
}
