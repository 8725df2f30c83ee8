package pipeline

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/pipelined/pipelined/internal/chlocal"
)

// TestMain lets chlocal shut the engine down in order (chDB must not be torn down by exit).
func TestMain(m *testing.M) { chlocal.Main(m) }

// progressFixture is a Writer on a local ClickHouse whose table holds windows of partitions 0,
// 1, 3 and 5, and the progress each partition must read back (lookback 24h).
type progressFixture struct {
	w    *Writer
	want map[int]Progress
}

func newProgressFixture(t *testing.T) *progressFixture {
	t.Helper()
	srv := chlocal.NewTest(t)
	cfg := DefaultConfig()
	cfg.ClickHouse.Addr = srv.Addr()
	cfg.ClickHouse.Database = fmt.Sprintf("progress_%d", time.Now().UnixNano())
	cfg.ClickHouse.Lookback = 24 * time.Hour
	cfg.ClickHouse.TTL = 0 // the windows below are months old
	cfg.ClickHouse.RetryMaxBackoff = 100 * time.Millisecond
	w := NewWriter(&cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), newMetrics(1, nil))
	if err := w.Setup(t.Context()); err != nil {
		t.Fatal(err)
	}
	const base = int64(1_768_003_200) // 2026-01-10T00:00:00Z, seconds
	pos := func(n uint64) Position { return positionFrom(proto.UInt128{Low: n << batchBits}) }
	type row struct {
		p          int
		start      int64 // seconds
		thru       uint64
		lastEventS int64
	}
	rows := []row{
		// Partition 0: a window 48h before its newest (outside its lookback), one 23h before
		// (inside), and the newest written twice (the higher flushed_through counts).
		{0, base - 48*3600, 10, base - 48*3600 + 5},
		{0, base - 23*3600, 20, base - 23*3600 + 7},
		{0, base, 100, base + 30},
		{0, base, 250, base + 59},
		// Partition 1: one window, 30 days before partition 0's newest. It is partition 1's
		// newest, so it is read, and the query reaches back to it, past partition 0's bound.
		{1, base - 30*86400, 7, base - 30*86400 + 1},
		// Partition 3: its newest and one exactly 24h before it (the bound is inclusive).
		{3, base - 86400, 40, base - 86400 + 2},
		{3, base, 41, base + 3},
		// Partition 5 is not read: its rows must not show up in anyone's progress.
		{5, base, 999, base + 50},
	}
	want := map[int]Progress{}
	for _, p := range []int{0, 1, 2, 3} {
		want[p] = Progress{Through: map[int64]Position{}, MaxEvent: math.MinInt64}
	}
	keep := map[[2]int64]bool{{0, base - 23*3600}: true, {0, base}: true, {1, base - 30*86400}: true, {3, base - 86400}: true, {3, base}: true}
	var values string
	for i, r := range rows {
		if i > 0 {
			values += ", "
		}
		// Position{Entry: thru}: flushed_through is the entry shifted past the batch bits.
		values += fmt.Sprintf("(toDateTime(%d, 'UTC'), %d, %d, 1, fromUnixTimestamp64Milli(%d), fromUnixTimestamp64Milli(%d), toUInt128(%d))",
			r.start, i, r.p, r.lastEventS*1000, r.lastEventS*1000, r.thru<<batchBits)
		if !keep[[2]int64{int64(r.p), r.start}] {
			continue
		}
		pr := want[r.p]
		if old, ok := pr.Through[r.start*1000]; !ok || old.Less(pos(r.thru)) {
			pr.Through[r.start*1000] = pos(r.thru)
		}
		if pr.Max.Less(pos(r.thru)) {
			pr.Max = pos(r.thru)
		}
		pr.MaxEvent = max(pr.MaxEvent, r.lastEventS*1000)
		want[r.p] = pr
	}
	c, err := w.dial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Do(t.Context(), ch.Query{Body: "INSERT INTO " + w.table() +
		" (window_start, device_id, source_partition, count, first_event, last_event, flushed_through) VALUES " + values}); err != nil {
		t.Fatal(err)
	}
	return &progressFixture{w: w, want: want}
}

// One query reads several partitions' progress, and each partition gets exactly what a query
// for it alone gets: its own windows within the lookback of its own newest window.
func TestProgressOfSeveralPartitionsInOneQuery(t *testing.T) {
	f := newProgressFixture(t)
	c, err := f.w.dial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	all, err := f.w.progress(t.Context(), c, []int{0, 1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(all, f.want) {
		t.Fatalf("progress of partitions 0-3:\n got %+v\nwant %+v", all, f.want)
	}
	for p, want := range f.want {
		alone, err := f.w.progress(t.Context(), c, []int{p})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(alone, map[int]Progress{p: want}) {
			t.Errorf("progress of partition %d alone:\n got %+v\nwant %+v", p, alone, want)
		}
	}
}

// Partitions that ask for their progress while a query runs are read together by the next one;
// each read gets its own Progress, even two reads of one partition; a read alone (through
// ReadProgress, settling first) is served at once; after close, a read fails.
func TestProgressReaderReadsQueuedPartitionsInOneQuery(t *testing.T) {
	f := newProgressFixture(t)
	r := newProgressReader(f.w)
	defer r.close()
	// As if a query were running: the reads below queue until serve is started.
	r.mu.Lock()
	r.busy = true
	r.mu.Unlock()
	parts := []int{0, 1, 2, 3, 0}
	reads := make([]*progressRead, len(parts))
	for i, p := range parts {
		q, err := r.enqueue(p)
		if err != nil {
			t.Fatal(err)
		}
		reads[i] = q
	}
	r.wg.Add(1)
	go r.serve()
	got := make([]Progress, len(parts))
	for i, p := range parts {
		<-reads[i].done
		if reads[i].err != nil {
			t.Fatalf("read %d (partition %d): %v", i, p, reads[i].err)
		}
		got[i] = reads[i].pr
		if !reflect.DeepEqual(got[i], f.want[p]) {
			t.Errorf("read %d (partition %d):\n got %+v\nwant %+v", i, p, got[i], f.want[p])
		}
	}
	r.wg.Wait() // serve ends once it finds the queue empty
	r.mu.Lock()
	queries, busy := r.queries, r.busy
	r.mu.Unlock()
	if queries != 1 || busy {
		t.Errorf("after %d queued reads: %d queries sent, serve running %v; want 1 query, serve ended", len(parts), queries, busy)
	}
	clear(got[0].Through)
	if len(got[4].Through) == 0 {
		t.Error("two reads of partition 0 share one Through map")
	}
	// A read alone is served at once.
	if pr, err := r.ReadProgress(t.Context(), 3); err != nil || !reflect.DeepEqual(pr, f.want[3]) {
		t.Errorf("read of partition 3 alone: got %+v, %v; want %+v", pr, err, f.want[3])
	}
	r.close()
	if _, err := r.ReadProgress(t.Context(), 1); err == nil {
		t.Error("read after close: no error")
	}
}
