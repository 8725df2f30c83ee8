package tests

// Fault tests: "lose nothing, count nothing twice". Each one runs the real producer, the local
// Pulsar broker, pipelined and the local ClickHouse over TCP, breaks something mid-run, and then
// compares every device-minute of the final view with what the test itself computed from the
// messages the broker acknowledged to the producer.

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"

	"github.com/pipelined/pipelined/agg"
	"github.com/pipelined/pipelined/internal/avrodec"
	"github.com/pipelined/pipelined/internal/chlocal"
	"github.com/pipelined/pipelined/internal/loadgen"
	"github.com/pipelined/pipelined/pipeline"
)

// faultSeed returns the seed of a test's random choices: $PIPELINED_FAULT_SEED, or the clock.
// It is logged, so a failing run can be repeated with the same kill times.
func faultSeed(t *testing.T) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("PIPELINED_FAULT_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("PIPELINED_FAULT_SEED=%q: %v", v, err)
		}
	}
	t.Logf("seed %d (PIPELINED_FAULT_SEED=%d repeats this run's random choices)", seed, seed)
	return rand.New(rand.NewPCG(seed, 0x6661756c74))
}

// pastBase is the event time the tests' readings start at: a whole minute, in the past, well
// within the progress lookback.
func pastBase(ago time.Duration) int64 {
	return time.Now().Add(-ago).Truncate(time.Minute).UnixMilli()
}

// kill -9 at random moments while a million messages are produced and consumed: after the last
// run drains the topic, every device-minute is exact.
func TestKill9(t *testing.T) {
	n, rate, kills := int64(1_000_000), 20_000, 10
	if testing.Short() {
		n, rate, kills = 60_000, 20_000, 3
	}
	rng := faultSeed(t)
	s, cfg := startFaultServices(t)
	e := newExpectation()
	pr := s.startProducing(t, e, n, 10_000, pastBase(40*time.Minute), 20, rate)
	t0 := time.Now()
	for i := 0; i < kills || pr.running(); i++ {
		p := startProc(t, cfg, "pipelined")
		d := time.Duration(100+rng.IntN(4900)) * time.Millisecond
		time.Sleep(d)
		m := p.mustMetrics()
		p.kill9()
		backlog, _ := s.backlog(t, cfg.Pulsar.Subscription)
		t.Logf("kill -9 #%d after %s: it had received %.0f, skipped %.0f as already written; backlog %d, produced %d",
			i+1, d, m.sum("pipelined_messages_received_total"), m.sum("pipelined_replayed_messages_skipped_total"), backlog, e.n.Load())
	}
	pr.wait(t, e, n)
	p := startProc(t, cfg, "pipelined-last")
	s.waitDrained(t, cfg, 3*time.Minute, nil, p)
	m := p.mustMetrics()
	p.term(time.Minute)
	t.Logf("last run received %.0f, skipped %.0f as already written; all done %s after the first start",
		m.sum("pipelined_messages_received_total"), m.sum("pipelined_replayed_messages_skipped_total"), time.Since(t0))
	compare(t, e.cells, s.found(t, cfg))
	if late := s.count(t, "SELECT count() AS n FROM "+s.tableName(cfg.ClickHouse.LateTable)); late != 0 {
		t.Fatalf("%d readings in the late table; none was late", late)
	}
}

// kill -9 while an INSERT is on the server: its data sent, its rows not yet committed (the local
// ClickHouse holds it, as a busy server would be slow to). The server completes it after the
// client is gone, so the next process must not read the partitions' progress before it lands,
// or it replays and writes those rows a second time.
func TestKill9WhileAnInsertRuns(t *testing.T) {
	n, rate := int64(300_000), 15_000
	if testing.Short() {
		n = 150_000
	}
	s, cfg := startFaultServices(t)
	hold := s.ch.HoldInserts(cfg.ClickHouse.Table)
	e := newExpectation()
	pr := s.startProducing(t, e, n, 10_000, pastBase(40*time.Minute), 20, rate)
	p := startProc(t, cfg, "pipelined")
	select {
	case <-hold.Held():
	case <-time.After(time.Minute):
		t.Fatal("no INSERT into the table within a minute")
	}
	p.kill9()
	t.Logf("kill -9 with %d INSERTs held on the server, %d messages produced", hold.Count(), e.n.Load())
	p = startProc(t, cfg, "pipelined")
	// Let the INSERT land once the new process either waits for it or has gone on without
	// waiting: it receives from every partition, so it has read every partition's progress
	// without the INSERT's rows. Until then the INSERT stays on the server, so a process that
	// looks for it finds it.
	p.waitUntil("a wait for the INSERT, or messages from every partition", time.Minute, func(m promMetrics) bool {
		return m.sum("pipelined_handover_waits_total") > 0 || len(owned(m)) == partitions
	})
	hold.Release()
	pr.wait(t, e, n)
	s.waitDrained(t, cfg, 3*time.Minute, nil, p)
	m := p.mustMetrics()
	p.term(time.Minute)
	if w := m.sum("pipelined_handover_waits_total"); w == 0 {
		t.Error("pipelined_handover_waits_total = 0: no partition waited for the INSERT the killed process left running")
	}
	t.Logf("the new process waited %.0f times for earlier INSERTs, received %.0f, skipped %.0f as already written",
		m.sum("pipelined_handover_waits_total"), m.sum("pipelined_messages_received_total"), m.sum("pipelined_replayed_messages_skipped_total"))
	compare(t, e.cells, s.found(t, cfg))
}

// sampler scrapes a process's /metrics every interval in the background.
type sampler struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	all  []sample
}

type sample struct {
	at time.Time
	m  promMetrics
}

func startSampler(p *proc, every time.Duration) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			if m, err := p.metrics(); err == nil {
				s.mu.Lock()
				s.all = append(s.all, sample{time.Now(), m})
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// finish stops sampling and returns the samples.
func (s *sampler) finish() []sample {
	close(s.stop)
	<-s.done
	return s.all
}

// between returns the samples taken in [from, to).
func between(all []sample, from, to time.Time) []sample {
	var out []sample
	for _, s := range all {
		if !s.at.Before(from) && s.at.Before(to) {
			out = append(out, s)
		}
	}
	return out
}

// ClickHouse unreachable for 30 s mid-run: intake stops at limits.max_pending_rows, the process
// says so (metrics, log), retries, catches up, and the totals are exact.
func TestClickHouseOutage(t *testing.T) {
	n, rate, outage := int64(600_000), 10_000, 30*time.Second
	if testing.Short() {
		n, rate, outage = 60_000, 10_000, 5*time.Second
	}
	s, cfg := startFaultServices(t)
	cfg.Limits.MaxPendingRows = 5000 // a few windows' worth: 64 partitions close ~10,000 rows a minute
	e := newExpectation()
	pr := s.startProducing(t, e, n, 10_000, pastBase(40*time.Minute), 20, rate)
	p := startProc(t, cfg, "pipelined")
	smp := startSampler(p, 100*time.Millisecond)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if p.mustMetrics().sum("pipelined_rows_written_total") > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing written in a minute")
		}
	}
	addr := s.ch.Addr()
	if err := s.ch.Close(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	t.Logf("ClickHouse at %s closed", addr)
	time.Sleep(outage)
	ch2, err := chlocal.New(chlocal.Config{Addr: addr})
	if err != nil {
		t.Fatalf("ClickHouse again on %s: %v", addr, err)
	}
	if err := ch2.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ch2.Close() })
	s.ch = ch2
	up := time.Now()
	t.Logf("ClickHouse back on %s after %s", addr, up.Sub(down).Round(time.Millisecond))
	pr.wait(t, e, n)
	s.waitDrained(t, cfg, 3*time.Minute, nil, p)
	caughtUp := time.Now()
	all := smp.finish()
	final := p.mustMetrics()
	p.term(time.Minute)

	var maxPending float64
	for _, x := range all {
		maxPending = max(maxPending, x.m.sum("pipelined_pending_rows"))
	}
	if maxPending > float64(cfg.Limits.MaxPendingRows) {
		t.Errorf("pipelined_pending_rows reached %.0f, over limits.max_pending_rows %d", maxPending, cfg.Limits.MaxPendingRows)
	}
	during := between(all, down.Add(time.Second), up)
	if len(during) < 3 {
		t.Fatalf("only %d metrics samples during the outage", len(during))
	}
	sawDown := false
	for _, x := range during {
		sawDown = sawDown || x.m.sum("pipelined_clickhouse_up") == 0
	}
	if !sawDown {
		t.Error("pipelined_clickhouse_up never went 0 during the outage")
	}
	before := between(all, time.Time{}, down)
	errsBefore := before[len(before)-1].m.sum("pipelined_clickhouse_errors_total")
	if errs := final.sum("pipelined_clickhouse_errors_total"); errs <= errsBefore {
		t.Errorf("pipelined_clickhouse_errors_total %.0f, %.0f before the outage: want it to rise", errs, errsBefore)
	}
	if final.sum("pipelined_clickhouse_up") != 1 {
		t.Error("pipelined_clickhouse_up is not 1 after the outage")
	}
	// Intake stops: over the last third of the outage nothing more was taken in.
	last := between(all, up.Add(-outage/3), up)
	if len(last) >= 2 {
		r0, r1 := last[0].m.sum("pipelined_messages_received_total"), last[len(last)-1].m.sum("pipelined_messages_received_total")
		if r1 != r0 {
			t.Errorf("intake went on while ClickHouse was away: %.0f messages received in the last %s of the outage", r1-r0, outage/3)
		}
	}
	var rss float64
	for _, x := range all {
		rss = max(rss, x.m.sum("process_resident_memory_bytes"))
	}
	t.Logf("max pending rows %.0f (limit %d); clickhouse errors %.0f; max RSS %.0f MiB; caught up %s after ClickHouse came back",
		maxPending, cfg.Limits.MaxPendingRows, final.sum("pipelined_clickhouse_errors_total"), rss/(1<<20), caughtUp.Sub(up).Round(time.Millisecond))
	logs := p.log.String()
	for _, want := range []string{"clickhouse error, retrying", "clickhouse recovered"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log has no %q", want)
		}
	}
	compare(t, e.cells, s.found(t, cfg))
}

// The broker drops every connection a few times while pipelined consumes: the client
// reconnects, the broker sends again what was not acknowledged, and the totals are exact.
func TestPulsarConnectionsDropped(t *testing.T) {
	n, drops := int64(400_000), 8
	if testing.Short() {
		n, drops = 40_000, 3
	}
	rng := faultSeed(t)
	s, cfg := startFaultServices(t)
	e := newExpectation()
	base := pastBase(40 * time.Minute)
	p := startProc(t, cfg, "pipelined")
	p.waitReady(time.Minute)
	// Messages are produced in chunks and the connections dropped between them: a producer
	// dropped with messages in flight sends them again, and the broker (like Pulsar without
	// deduplication) would store them twice.
	chunk := n / int64(drops)
	for i := range drops {
		from := int64(i) * chunk
		count := chunk
		if i == drops-1 {
			count = n - from
		}
		s.startLoad(t, e, load{n: count, from: from, total: n, devices: 10_000, base: base, minutes: 20}).finish(t)
		time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
		m := p.mustMetrics()
		s.broker.DropConnections()
		backlog, _ := s.backlog(t, cfg.Pulsar.Subscription)
		t.Logf("drop #%d: %d produced, %.0f received, backlog %d", i+1, e.n.Load(), m.sum("pipelined_messages_received_total"), backlog)
	}
	if e.n.Load() != n {
		t.Fatalf("recorded %d messages, want %d", e.n.Load(), n)
	}
	s.waitDrained(t, cfg, 3*time.Minute, nil, p)
	m := p.mustMetrics()
	p.term(time.Minute)
	t.Logf("received %.0f, redelivery restarts %.0f, skipped as already written %.0f",
		m.sum("pipelined_messages_received_total"), m.sum("pipelined_redelivery_restarts_total"), m.sum("pipelined_replayed_messages_skipped_total"))
	// Each drop finds messages held in open windows, unacknowledged (the idle flush is 2 s):
	// the broker sends them again and their partitions start over.
	if m.sum("pipelined_redelivery_restarts_total") == 0 {
		t.Error("no partition started over from a redelivery: the drops exercised nothing")
	}
	compare(t, e.cells, s.found(t, cfg))
}

// badMsg is a message the decoder refuses, and why.
type badMsg struct {
	payload []byte
	key     string
	reason  string
}

// makeBadMessages returns n messages pipelined cannot aggregate, of six kinds, in turn: random
// bytes, truncated records, records of another schema (the padded one), empty payloads, payloads
// over schema.max_message_bytes, and good records stamped hours ahead of the clock (more than
// window.max_future); each with the reason pipelined gives, keyed by a device id so that they
// spread over the partitions.
func makeBadMessages(t *testing.T, rng *rand.Rand, cfg pipeline.Config, n int, base int64) []badMsg {
	t.Helper()
	dec, err := cfg.Decoder("")
	if err != nil {
		t.Fatal(err)
	}
	padded := loadgen.New(loadgen.Config{Padded: true, Devices: 10_000, Seed: rng.Uint64()})
	randomBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return b
	}
	out := make([]badMsg, n)
	for i := range out {
		var b []byte
		want := ""
		ts := base + rng.Int64N(20*60_000)
		switch i % 6 {
		case 0: // shorter than the shortest record (36 bytes): never a valid one
			b = randomBytes(1 + rng.IntN(35))
		case 1:
			enc := encodeSample(t, randomSample(rng, rng.Int32N(10_000), ts))
			b = enc[:1+rng.IntN(len(enc)-1)]
			want = avrodec.ReasonTruncated
		case 2:
			_, b = padded.Next(ts, nil)
			want = avrodec.ReasonTrailingBytes
		case 3:
			b = []byte{}
			want = avrodec.ReasonEmpty
		case 4:
			b = randomBytes(cfg.Schema.MaxMessageBytes + 1 + rng.IntN(8000))
			want = avrodec.ReasonOversized
		case 5: // decodes; its time would move the watermark hours ahead and make the rest late
			ahead := time.Now().Add(cfg.Window.MaxFuture + time.Hour).UnixMilli()
			b = encodeSample(t, randomSample(rng, rng.Int32N(10_000), ahead+rng.Int64N(60*60_000)))
			out[i] = badMsg{payload: b, key: strconv.Itoa(rng.IntN(10_000)), reason: pipeline.ReasonFutureTime}
			continue
		}
		var r agg.Reading
		err := dec.Decode(b, &r)
		var de *avrodec.Error
		if !errors.As(err, &de) {
			t.Fatalf("bad message %d (%d bytes) decoded: %v", i, len(b), err)
		}
		if want != "" && de.Reason != want {
			t.Fatalf("bad message %d: reason %q, want %q", i, de.Reason, want)
		}
		out[i] = badMsg{payload: b, key: strconv.Itoa(rng.IntN(10_000)), reason: de.Reason}
	}
	return out
}

// consume reads the first n messages of topic (all partitions) with a fresh subscription,
// failing if they do not all come within a minute.
func consume(t *testing.T, url, topic string, n int64) []pulsar.Message {
	t.Helper()
	c, err := pulsar.NewClient(pulsar.ClientOptions{URL: url, Logger: plog.DefaultNopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cons, err := c.Subscribe(pulsar.ConsumerOptions{
		Topic: topic, SubscriptionName: "fault-test-check", Type: pulsar.Exclusive,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
	})
	if err != nil {
		t.Fatalf("subscribe to %s: %v", topic, err)
	}
	defer cons.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out []pulsar.Message
	for int64(len(out)) < n {
		msg, err := cons.Receive(ctx)
		if err != nil {
			t.Fatalf("%s: %d of %d messages received: %v", topic, len(out), n, err)
		}
		out = append(out, msg)
	}
	return out
}

// Bad messages (undecodable, or stamped hours ahead) mixed into the stream: each is counted by reason, published to the
// dead-letter topic with its original bytes, key and reason, and acknowledged; no partition
// stalls, the process stays up, and the good messages' totals are exact.
func TestBadMessages(t *testing.T) {
	n, nbad := int64(300_000), 3000
	if testing.Short() {
		n, nbad = 30_000, 500
	}
	rng := faultSeed(t)
	s, cfg := startFaultServices(t)
	cfg.Schema.MaxMessageBytes = 4096
	base := pastBase(40 * time.Minute)
	bad := makeBadMessages(t, rng, cfg, nbad, base)
	wantReasons := map[string]float64{}
	for _, b := range bad {
		wantReasons[b.reason]++
	}
	e := newExpectation()
	p := startProc(t, cfg, "pipelined")
	pr := s.startProducing(t, e, n, 10_000, base, 20, 30_000)
	raw := newRawProducer(t, s.broker.URL(), topic)
	const rounds = 10
	for r := range rounds {
		var msgs []*pulsar.ProducerMessage
		for _, b := range bad[r*nbad/rounds : (r+1)*nbad/rounds] {
			msgs = append(msgs, &pulsar.ProducerMessage{Payload: b.payload, Key: b.key})
		}
		raw.send(t, msgs)
		time.Sleep(time.Duration(rng.IntN(800)) * time.Millisecond)
	}
	pr.wait(t, e, n)
	s.waitDrained(t, cfg, 3*time.Minute, nil, p)
	m := p.mustMetrics()
	p.term(time.Minute)

	got := m.byLabel("pipelined_decode_errors_total", "reason")
	for _, r := range append(avrodec.Reasons(), pipeline.ReasonFutureTime) {
		if got[r] != wantReasons[r] {
			t.Errorf("pipelined_decode_errors_total{reason=%q} = %.0f, want %.0f", r, got[r], wantReasons[r])
		}
	}
	if dl := m.sum("pipelined_dead_lettered_messages_total"); dl != float64(nbad) {
		t.Errorf("pipelined_dead_lettered_messages_total = %.0f, want %d", dl, nbad)
	}
	t.Logf("decode errors by reason: %v", got)

	// The dead-letter topic holds each bad message once, with its bytes, key and reason.
	want := map[string]int{}
	for _, b := range bad {
		want[b.reason+"\x00"+b.key+"\x00"+string(b.payload)]++
	}
	// The process has stopped, so the topic holds all it will: read exactly that.
	stored, err := s.broker.MessageCount(cfg.Pulsar.DeadLetter(), -1)
	if err != nil {
		t.Fatal(err)
	}
	if stored != int64(nbad) {
		t.Errorf("the dead-letter topic holds %d messages, want %d", stored, nbad)
	}
	dlq := consume(t, s.broker.URL(), cfg.Pulsar.DeadLetter(), stored)
	parts := map[string]bool{}
	for _, msg := range dlq {
		props := msg.Properties()
		k := props["pipelined-reason"] + "\x00" + msg.Key() + "\x00" + string(msg.Payload())
		if want[k] == 0 {
			t.Errorf("dead-letter message %s (reason %q, key %q, %d bytes) was not sent, or is there twice",
				msg.ID(), props["pipelined-reason"], msg.Key(), len(msg.Payload()))
			continue
		}
		want[k]--
		parts[props["pipelined-source-partition"]] = true
		if props["pipelined-source-message-id"] == "" || props["pipelined-error"] == "" {
			t.Errorf("dead-letter message %s lacks its source message id or error: %v", msg.ID(), props)
		}
	}
	missing := 0
	for _, c := range want {
		missing += c
	}
	if missing > 0 {
		t.Errorf("%d of %d bad messages are not in the dead-letter topic", missing, nbad)
	}
	if minParts := min(32, nbad/20); len(parts) < minParts {
		t.Errorf("bad messages came from %d partitions, want at least %d", len(parts), minParts)
	}
	t.Logf("%d dead-letter messages from %d partitions", len(dlq), len(parts))
	compare(t, e.cells, s.found(t, cfg))
	if late := s.count(t, "SELECT count() AS n FROM "+s.tableName(cfg.ClickHouse.LateTable)); late != 0 {
		t.Fatalf("%d readings in the late table; none was late", late)
	}
}

// lateRow is a row of the late table.
type lateRow struct {
	device       int64
	eventMs      int64
	windowStartS int64
	status       int32
	values       [4]float64
}

// lateRows reads the late table by source partition and message position.
func (s *services) lateRows(t *testing.T, cfg pipeline.Config) map[lateKey]lateRow {
	t.Helper()
	var (
		part           proto.ColUInt16
		pos            proto.ColUInt128
		dev, ev, ws    proto.ColInt64
		status         proto.ColInt32
		tmp, hum, pres proto.ColFloat64
		bat            proto.ColFloat64
	)
	res := proto.Results{
		{Name: "source_partition", Data: &part}, {Name: "message_position", Data: &pos},
		{Name: "device_id", Data: &dev}, {Name: "e", Data: &ev}, {Name: "w", Data: &ws},
		{Name: "status", Data: &status}, {Name: "temperature", Data: &tmp}, {Name: "humidity", Data: &hum},
		{Name: "pressure", Data: &pres}, {Name: "battery_level", Data: &bat},
	}
	out := map[lateKey]lateRow{}
	s.chQuery(t, "SELECT source_partition, message_position, device_id, toInt64(toUnixTimestamp64Milli(event_time)) AS e, "+
		"toInt64(toUnixTimestamp(window_start)) AS w, status, temperature, humidity, pressure, battery_level FROM "+
		s.tableName(cfg.ClickHouse.LateTable)+" FINAL", res, func() {
		for i := range part.Rows() {
			k := lateKey{int(part.Row(i)), pos.Row(i)}
			if _, dup := out[k]; dup {
				t.Errorf("late table: partition %d position %v twice", k.partition, k.pos)
			}
			out[k] = lateRow{dev.Row(i), ev.Row(i), ws.Row(i), status.Row(i), [4]float64{tmp.Row(i), hum.Row(i), pres.Row(i), bat.Row(i)}}
		}
	})
	return out
}

type lateKey struct {
	partition int
	pos       proto.UInt128
}

func keyOf(id pulsar.MessageID) lateKey {
	b := id.BatchIdx()
	if b < 0 {
		b = 0
	}
	p := pipeline.Position{Ledger: uint64(id.LedgerID()), Entry: uint64(id.EntryID()), Batch: uint32(b)}
	return lateKey{int(id.PartitionIdx()), p.UInt128()}
}

// Readings beyond the allowed lateness: counted; with late_policy table written to the late
// table (each one, by partition and position), with drop only counted; never folded into a
// window, so the on-time totals stay exact.
func TestLateData(t *testing.T) {
	for _, policy := range []string{"table", "drop"} {
		t.Run(policy, func(t *testing.T) { testLateData(t, policy) })
	}
}

func testLateData(t *testing.T, policy string) {
	n, nlate := int64(200_000), 2000
	if testing.Short() {
		n, nlate = 20_000, 300
	}
	rng := faultSeed(t)
	s, cfg := startFaultServices(t)
	cfg.Window.LatePolicy = policy
	cfg.Window.AllowedLateness = 30 * time.Second
	base := pastBase(90 * time.Minute)
	const minutes = 20
	e := newExpectation()
	p := startProc(t, cfg, "pipelined")
	// The first half of the on-time readings, up to base+10m: then every partition's watermark
	// (its highest event time minus the delay) is past the end plus the allowed lateness of every
	// window starting before lateEnd (a minute of margin for the partition's highest time).
	s.startLoad(t, e, load{n: n / 2, total: n, devices: 10_000, base: base, minutes: minutes}).finish(t)
	w := cfg.Window
	lateEnd := (base + (minutes/2)*60_000 - (w.WatermarkDelay + w.AllowedLateness + w.Size + time.Minute).Milliseconds()) / 60_000 * 60_000
	if lateEnd <= base {
		t.Fatalf("watermark delay %s too long for this test: no on-time window closes in the first half", w.WatermarkDelay)
	}
	late := make([]loadgen.Sample, nlate)
	msgs := make([]*pulsar.ProducerMessage, nlate)
	for i := range late {
		// Minutes before the stream, and its first minutes, whose windows have on-time readings.
		late[i] = randomSample(rng, rng.Int32N(10_000), base-20*60_000+rng.Int64N(lateEnd-base+20*60_000))
		msgs[i] = &pulsar.ProducerMessage{Payload: encodeSample(t, late[i]), Key: strconv.Itoa(int(late[i].SensorID))}
	}
	ids := newRawProducer(t, s.broker.URL(), topic).send(t, msgs)
	s.startLoad(t, e, load{n: n - n/2, from: n / 2, total: n, devices: 10_000, base: base, minutes: minutes}).finish(t)
	s.waitDrained(t, cfg, 3*time.Minute, nil, p)
	m := p.mustMetrics()
	p.term(time.Minute)

	if got := m.sum("pipelined_late_messages_total"); got != float64(nlate) {
		t.Errorf("pipelined_late_messages_total = %.0f, want %d", got, nlate)
	}
	rows := s.lateRows(t, cfg)
	switch policy {
	case "table":
		if got := m.sum("pipelined_late_rows_written_total"); got != float64(nlate) {
			t.Errorf("pipelined_late_rows_written_total = %.0f, want %d", got, nlate)
		}
		if len(rows) != nlate {
			t.Errorf("%d rows in the late table, want %d", len(rows), nlate)
		}
		bad := 0
		for i, id := range ids {
			r, ok := rows[keyOf(id)]
			l := late[i]
			want := lateRow{int64(l.SensorID), l.Timestamp, l.Timestamp / 60_000 * 60, l.Status, [4]float64{l.Temperature, l.Humidity, l.Pressure, l.BatteryLevel}}
			if !ok || r != want {
				if bad++; bad <= 10 {
					t.Errorf("late message %d (partition %d, %s): row %+v (found %v), want %+v", i, id.PartitionIdx(), id, r, ok, want)
				}
			}
		}
	case "drop":
		if len(rows) != 0 {
			t.Errorf("%d rows in the late table with late_policy drop", len(rows))
		}
	}
	compare(t, e.cells, s.found(t, cfg))
}

// owned returns the partitions a process has received messages of.
func owned(m promMetrics) map[string]bool {
	out := map[string]bool{}
	for part, v := range m.byLabel("pipelined_messages_received_total", "partition") {
		if v > 0 {
			out[part] = true
		}
	}
	return out
}

// Two processes on one Failover subscription share the partitions; one is killed with -9 and
// the other takes its partitions over; the totals are exact.
func TestFailoverTwoProcesses(t *testing.T) {
	n, rate := int64(600_000), 15_000
	if testing.Short() {
		n = 60_000
	}
	rng := faultSeed(t)
	s, cfg := startFaultServices(t)
	e := newExpectation()
	a := startProc(t, cfg, "pipelined-a")
	a.waitReady(time.Minute)
	b := startProc(t, cfg, "pipelined-b")
	b.waitReady(time.Minute)
	for i := range partitions {
		st, err := s.broker.Subscription(topic, i, cfg.Pulsar.Subscription)
		if err != nil {
			t.Fatal(err)
		}
		if st.Consumers != 2 {
			t.Fatalf("partition %d has %d consumers, want 2 (one per process)", i, st.Consumers)
		}
	}
	pr := s.startProducing(t, e, n, 10_000, pastBase(40*time.Minute), 20, rate)
	var ownA, ownB map[string]bool
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		ownA, ownB = owned(a.mustMetrics()), owned(b.mustMetrics())
		if len(ownA)+len(ownB) == partitions {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a minute, a has received from %d partitions and b from %d, want %d together", len(ownA), len(ownB), partitions)
		}
	}
	for part := range ownA {
		if ownB[part] {
			t.Errorf("partition %s consumed by both processes", part)
		}
	}
	if len(ownA) == 0 || len(ownB) == 0 {
		t.Fatalf("a consumes %d partitions and b %d: want both to have some", len(ownA), len(ownB))
	}
	t.Logf("a consumes %d partitions, b %d", len(ownA), len(ownB))
	victim, survivor := a, b
	if rng.IntN(2) == 1 {
		victim, survivor = b, a
	}
	kill := int64(float64(n) * (0.3 + 0.3*rng.Float64()))
	for e.n.Load() < kill && pr.running() {
		time.Sleep(50 * time.Millisecond)
	}
	victim.kill9()
	killed := time.Now()
	t.Logf("killed %s with -9 after %d messages produced", victim.name, e.n.Load())
	// Every partition is handed to the survivor (the victim may already have written and
	// acknowledged all of some partition, so the survivor need not receive from each).
	for i := range partitions {
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
			st, err := s.broker.Subscription(topic, i, cfg.Pulsar.Subscription)
			if err != nil {
				t.Fatal(err)
			}
			if st.Consumers == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a minute after the kill partition %d has %d consumers, want 1 (%s)", i, st.Consumers, survivor.name)
			}
		}
	}
	t.Logf("%s holds all %d partitions %s after the kill", survivor.name, partitions, time.Since(killed).Round(time.Millisecond))
	pr.wait(t, e, n)
	s.waitDrained(t, cfg, 3*time.Minute, nil, survivor)
	survivor.term(time.Minute)
	compare(t, e.cells, s.found(t, cfg))
}

// SIGTERM mid-run, then start again: exit 0, nothing lost or counted twice, and the new process
// takes messages again within 5 s of its start.
func TestGracefulRestart(t *testing.T) {
	n, rate, restarts := int64(600_000), 15_000, 3
	if testing.Short() {
		n, rate, restarts = 60_000, 6_000, 1
	}
	rng := faultSeed(t)
	s, cfg := startFaultServices(t)
	e := newExpectation()
	pr := s.startProducing(t, e, n, 10_000, pastBase(40*time.Minute), 20, rate)
	p := startProc(t, cfg, "pipelined")
	for r := range restarts {
		time.Sleep(time.Duration(2000+rng.IntN(5000)*int(n)/600_000) * time.Millisecond)
		if !pr.running() {
			t.Fatal("the production ended before the restart: nothing left to resume")
		}
		before := p.mustMetrics()
		took := p.term(time.Minute)
		p = startProc(t, cfg, "pipelined")
		var m promMetrics
		for m = p.mustMetrics(); m.sum("pipelined_messages_received_total") == 0; m = p.mustMetrics() {
			if time.Since(p.started) > time.Minute {
				t.Fatal("nothing received for a minute after the restart")
			}
			time.Sleep(10 * time.Millisecond)
		}
		resume := time.Since(p.started)
		t.Logf("restart #%d: the stopped process had received %.0f and exited 0 in %s; the new one received its first message %s after its start",
			r+1, before.sum("pipelined_messages_received_total"), took.Round(time.Millisecond), resume.Round(time.Millisecond))
		if resume > 5*time.Second {
			t.Errorf("restart #%d: first message received %s after the start, want under 5s", r+1, resume)
		}
	}
	pr.wait(t, e, n)
	s.waitDrained(t, cfg, 3*time.Minute, nil, p)
	m := p.mustMetrics()
	p.term(time.Minute)
	t.Logf("last run: received %.0f, skipped as already written %.0f", m.sum("pipelined_messages_received_total"), m.sum("pipelined_replayed_messages_skipped_total"))
	compare(t, e.cells, s.found(t, cfg))
}

// Memory ceiling: with a tiny limits.max_keys_per_window, windows are written early as partial
// rows (several rows per device-minute in the table, merged by the view), open keys stay under
// the limit, a kill -9 among the partial flushes loses nothing, and the totals are exact.
func TestMemoryCeiling(t *testing.T) {
	n, rate, maxKeys := int64(300_000), 20_000, 20
	if testing.Short() {
		n = 40_000
	}
	rng := faultSeed(t)
	s, cfg := startFaultServices(t)
	cfg.Limits.MaxKeysPerWindow = maxKeys
	e := newExpectation()
	pr := s.startProducing(t, e, n, 10_000, pastBase(40*time.Minute), 20, rate)
	p := startProc(t, cfg, "pipelined")
	smp := startSampler(p, 100*time.Millisecond)
	// The kill falls among the partial flushes: after the first, at a random moment.
	p.waitUntil("a partial flush", time.Minute, func(m promMetrics) bool { return m.sum("pipelined_partial_flushes_total") > 0 })
	time.Sleep(time.Duration(rng.IntN(3000)) * time.Millisecond)
	p.failIfExited()
	all := smp.finish()
	p.kill9()
	// What the killed run wrote: at least its last sample's count (the table's own count
	// shrinks as ClickHouse merges a device-minute's parts in the background).
	var written float64
	for _, x := range all {
		written = max(written, x.m.sum("pipelined_rows_written_total"))
	}
	p = startProc(t, cfg, "pipelined")
	smp = startSampler(p, 100*time.Millisecond)
	pr.wait(t, e, n)
	s.waitDrained(t, cfg, 3*time.Minute, nil, p)
	all = append(all, smp.finish()...)
	m := p.mustMetrics()
	p.term(time.Minute)

	var maxOpen, partial float64
	for _, x := range all {
		maxOpen = max(maxOpen, x.m.sum("pipelined_open_keys"))
		partial = max(partial, x.m.sum("pipelined_partial_flushes_total"))
	}
	partial = max(partial, m.sum("pipelined_partial_flushes_total"))
	// A partition has a window open for each window size in the watermark delay and allowed
	// lateness, and two more at the edges; each with fewer than max_keys_per_window devices.
	w := cfg.Window
	windows := int((w.WatermarkDelay+w.AllowedLateness)/w.Size) + 2
	if limit := float64(partitions * windows * maxKeys); maxOpen > limit {
		t.Errorf("pipelined_open_keys reached %.0f, want at most %.0f", maxOpen, limit)
	}
	if partial == 0 {
		t.Error("no partial flush")
	}
	written += m.sum("pipelined_rows_written_total")
	rows := s.count(t, "SELECT count() AS n FROM "+s.tableName(cfg.ClickHouse.Table))
	cells := s.count(t, "SELECT count() AS n FROM "+s.tableName(cfg.ClickHouse.ViewName()))
	t.Logf("max open keys %.0f (at most %d windows of %d devices in each of %d partitions); partial flushes %.0f (one run); at least %.0f rows written, %d left in the table after merges, for %d device-minutes",
		maxOpen, windows, maxKeys, partitions, partial, written, rows, cells)
	if written <= float64(cells) {
		t.Errorf("at most %.0f rows written for %d device-minutes: want windows written in several parts", written, cells)
	}
	compare(t, e.cells, s.found(t, cfg))
}

// A backlog whose event times are older than clickhouse.lookback (pipelined was down for days,
// or a topic is replayed): a kill -9 while it drains must not count the already written
// windows again on the restart.
func TestKill9OldBacklog(t *testing.T) {
	n, kills := int64(300_000), 3
	if testing.Short() {
		n, kills = 60_000, 2
	}
	rng := faultSeed(t)
	s, cfg := startFaultServices(t)
	e := newExpectation()
	// Three days old: past the default lookback of 24h by wall clock.
	s.startProducing(t, e, n, 10_000, pastBase(72*time.Hour), 20, 0).wait(t, e, n)
	for i := range kills {
		p := startProc(t, cfg, "pipelined")
		// Until it writes, or acknowledges everything without writing (what the last kill
		// left unacknowledged was all in ClickHouse already).
		p.waitUntil("a write, or the backlog acknowledged", time.Minute, func(m promMetrics) bool {
			if m.sum("pipelined_rows_written_total") > 0 {
				return true
			}
			b, ok := s.backlog(t, cfg.Pulsar.Subscription)
			return i > 0 && ok && b == 0
		})
		// The first kill comes right after the first INSERT, when most of the backlog is
		// still unacknowledged, so that the restart has written windows to skip whatever the
		// host's speed. Later kills fall anywhere in what is left, which a fast run may have
		// drained already: then nothing is left to kill for.
		if i > 0 {
			time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
		}
		m := p.mustMetrics()
		p.kill9()
		// Not ok: some partition was not subscribed yet (one writes as soon as its own
		// consumer runs), so its whole backlog is left.
		backlog, ok := s.backlog(t, cfg.Pulsar.Subscription)
		t.Logf("kill -9 #%d: it had received %.0f, skipped %.0f as already written, written %.0f rows; backlog %d (every partition subscribed: %t)",
			i+1, m.sum("pipelined_messages_received_total"), m.sum("pipelined_replayed_messages_skipped_total"), m.sum("pipelined_rows_written_total"), backlog, ok)
		if ok && backlog == 0 {
			if i == 0 {
				t.Fatal("the first kill, right after the first INSERT, left nothing to replay")
			}
			t.Logf("kill -9 #%d came after the backlog was drained: no more kills", i+1)
			break
		}
	}
	p := startProc(t, cfg, "pipelined-last")
	s.waitDrained(t, cfg, 3*time.Minute, nil, p)
	m := p.mustMetrics()
	p.term(time.Minute)
	t.Logf("last run received %.0f, skipped %.0f as already written", m.sum("pipelined_messages_received_total"), m.sum("pipelined_replayed_messages_skipped_total"))
	compare(t, e.cells, s.found(t, cfg))
}

// A rolling restart of two processes on one Failover subscription while messages flow: each
// SIGTERM moves the stopped process's partitions to the other, and its start takes some back
// from the other while that one has blocks in flight; the totals are exact.
func TestFailoverRollingRestart(t *testing.T) {
	n, rate, rounds := int64(600_000), 15_000, 2
	if testing.Short() {
		n, rate, rounds = 90_000, 10_000, 1
	}
	rng := faultSeed(t)
	s, cfg := startFaultServices(t)
	e := newExpectation()
	procs := []*proc{startProc(t, cfg, "pipelined-a"), nil}
	procs[0].waitReady(time.Minute)
	pr := s.startProducing(t, e, n, 10_000, pastBase(40*time.Minute), 20, rate)
	time.Sleep(time.Duration(1000+rng.IntN(2000)) * time.Millisecond)
	procs[1] = startProc(t, cfg, "pipelined-b") // joins while a consumes
	procs[1].waitReady(time.Minute)
	t.Logf("b joined after %d messages produced", e.n.Load())
	for r := range rounds * 2 {
		time.Sleep(time.Duration(1500+rng.IntN(3000)) * time.Millisecond)
		i := r % 2
		took := procs[i].term(time.Minute)
		t.Logf("%s stopped in %s after %d messages produced", procs[i].name, took.Round(time.Millisecond), e.n.Load())
		procs[i] = startProc(t, cfg, procs[i].name[:len("pipelined-a")])
		procs[i].waitReady(time.Minute)
	}
	if !pr.running() {
		t.Log("the production ended before the last restart")
	}
	pr.wait(t, e, n)
	s.waitDrained(t, cfg, 3*time.Minute, nil, procs...)
	for _, p := range procs {
		m := p.mustMetrics()
		t.Logf("%s: received %.0f from %d partitions, skipped %.0f as already written", p.name,
			m.sum("pipelined_messages_received_total"), len(owned(m)), m.sum("pipelined_replayed_messages_skipped_total"))
		p.term(time.Minute)
	}
	compare(t, e.cells, s.found(t, cfg))
}

// SIGTERM while ClickHouse is away: the graceful stop cannot write, so after shutdown_timeout
// the process gives up and exits non-zero, leaving what is unwritten unacknowledged; the next
// run, with ClickHouse back, replays it, and the totals are exact.
func TestShutdownDuringClickHouseOutage(t *testing.T) {
	n := int64(200_000)
	if testing.Short() {
		n = 40_000
	}
	s, cfg := startFaultServices(t)
	cfg.ShutdownTimeout = 5 * time.Second
	e := newExpectation()
	s.startProducing(t, e, n, 10_000, pastBase(40*time.Minute), 20, 0).wait(t, e, n)
	p := startProc(t, cfg, "pipelined")
	p.waitUntil("a write", time.Minute, func(m promMetrics) bool { return m.sum("pipelined_rows_written_total") > 0 })
	addr := s.ch.Addr()
	if err := s.ch.Close(); err != nil { // returns with the listener and every connection closed
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(cfg.ShutdownTimeout + 20*time.Second):
		t.Fatalf("no exit %s after SIGTERM with shutdown_timeout %s", time.Since(t0), cfg.ShutdownTimeout)
	}
	took := time.Since(t0)
	t.Logf("exited with %s %s after SIGTERM", p.state, took.Round(time.Millisecond))
	if p.state.ExitCode() == 0 {
		t.Error("exit code 0 although blocks were left unwritten")
	}
	if !strings.Contains(p.log.String(), "level=ERROR") {
		t.Error("no error logged")
	}
	ch2, err := chlocal.New(chlocal.Config{Addr: addr})
	if err != nil {
		t.Fatalf("ClickHouse again on %s: %v", addr, err)
	}
	if err := ch2.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ch2.Close() })
	s.ch = ch2
	p = startProc(t, cfg, "pipelined-after")
	s.waitDrained(t, cfg, 3*time.Minute, nil, p)
	m := p.mustMetrics()
	p.term(time.Minute)
	t.Logf("the next run received %.0f, skipped %.0f as already written", m.sum("pipelined_messages_received_total"), m.sum("pipelined_replayed_messages_skipped_total"))
	compare(t, e.cells, s.found(t, cfg))
}
