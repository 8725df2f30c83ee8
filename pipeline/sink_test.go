package pipeline

import (
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// An INSERT's query_id names exactly the partitions of its blocks, and differs per INSERT and
// per process; a new owner waits only for INSERTs that carry its partition.
func TestInsertQueryIDCarriesItsPartitions(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Pulsar.Topic = "persistent://iot/sensors/readings"
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	w := NewWriter(&cfg, log, newMetrics(1, nil))
	blocks := func(parts ...int) []*block {
		var bs []*block
		for _, p := range parts {
			bs = append(bs, &block{partition: p})
		}
		return bs
	}
	for _, parts := range [][]int{{0}, {7}, {8}, {63}, {0, 63}, {5, 5, 12}, {64}, {1023, 3}} {
		id := w.insertQueryID(blocks(parts...))
		if !strings.HasPrefix(id, w.idPrefix+w.instance+":") {
			t.Errorf("%v: query_id %q does not start with %q", parts, id, w.idPrefix+w.instance+":")
		}
		in := map[int]bool{}
		for _, p := range parts {
			in[p] = true
		}
		for p := range 1100 {
			if got := carries(id, p); got != in[p] {
				t.Errorf("%v: carries(%q, %d) = %v, want %v", parts, id, p, got, in[p])
			}
		}
	}
	if a, b := w.insertQueryID(blocks(1)), w.insertQueryID(blocks(1)); a == b {
		t.Errorf("two INSERTs got the same query_id %q", a)
	}
	w2 := NewWriter(&cfg, log, newMetrics(1, nil))
	if w2.instance == w.instance || w2.idPrefix != w.idPrefix {
		t.Errorf("two processes: instances %q and %q, prefixes %q and %q; want different instances, one prefix", w.instance, w2.instance, w.idPrefix, w2.idPrefix)
	}
	cfg.Pulsar.Topic = "persistent://iot/sensors/other"
	if w3 := NewWriter(&cfg, log, newMetrics(1, nil)); w3.idPrefix == w.idPrefix {
		t.Errorf("two topics share the query_id prefix %q", w.idPrefix)
	}
	// An id of the topic that does not parse is waited for, whatever partition.
	for _, id := range []string{w.idPrefix + "x", w.idPrefix + "a:1:zz", "nocolon"} {
		if !carries(id, 3) {
			t.Errorf("carries(%q, 3) = false, want true (unparsable: wait for it)", id)
		}
	}
}

// A writer holding a block waits clickhouse.insert_linger for more and writes them together;
// it does not wait with a full batch, with a linger of 0, or once a graceful stop has begun.
func TestWriterLingersForMoreBlocks(t *testing.T) {
	lateBlock := func(p, rows int) *block { return &block{partition: p, late: &lateRows{pos: make([]Position, rows)}} }
	partitions := func(bs []*block) []int {
		var ps []int
		for _, b := range bs {
			ps = append(ps, b.partition)
		}
		return ps
	}
	newWriter := func(linger time.Duration) (*Writer, chan *block, chan struct{}) {
		cfg := DefaultConfig()
		cfg.ClickHouse.InsertLinger = linger
		w := NewWriter(&cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), newMetrics(1, nil))
		hurry := make(chan struct{})
		w.hurry = hurry
		return w, make(chan *block, 64), hurry
	}
	cases := []struct {
		name   string
		linger time.Duration
		sends  map[time.Duration]*block // what arrives when, after the first block
		hurry  time.Duration            // when the graceful stop begins; 0: not in the test
		want   []int                    // partitions gathered with the first (partition 0)
		took   time.Duration
	}{
		{"lingers", 200 * time.Millisecond, map[time.Duration]*block{50 * time.Millisecond: lateBlock(1, 10), 150 * time.Millisecond: lateBlock(2, 10), 250 * time.Millisecond: lateBlock(3, 10)}, 0, []int{0, 1, 2}, 200 * time.Millisecond},
		{"no linger", 0, map[time.Duration]*block{time.Millisecond: lateBlock(1, 10)}, 0, []int{0}, 0},
		{"full batch", 200 * time.Millisecond, map[time.Duration]*block{10 * time.Millisecond: lateBlock(1, maxBatchRows), 20 * time.Millisecond: lateBlock(2, 10)}, 0, []int{0, 1}, 10 * time.Millisecond},
		{"stop begins", 200 * time.Millisecond, map[time.Duration]*block{10 * time.Millisecond: lateBlock(1, 10), 100 * time.Millisecond: lateBlock(2, 10)}, 50 * time.Millisecond, []int{0, 1}, 50 * time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w, in, hurry := newWriter(c.linger)
				var senders sync.WaitGroup
				defer senders.Wait()
				for d, b := range c.sends {
					senders.Go(func() { time.Sleep(d); in <- b })
				}
				if c.hurry > 0 {
					time.AfterFunc(c.hurry, func() { close(hurry) })
				}
				t0 := time.Now()
				batch, late := w.gather(t.Context(), in, lateBlock(0, 10), nil, nil)
				if took := time.Since(t0); took != c.took {
					t.Errorf("gathered after %v, want %v", took, c.took)
				}
				if len(batch) != 0 || !slices.Equal(partitions(late), c.want) {
					t.Errorf("gathered window blocks of partitions %v and late ones of %v; want none and %v", partitions(batch), partitions(late), c.want)
				}
			})
		})
	}
}

// A block of a partition that moved to another consumer while the writer lingered is dropped,
// not written, and its rows leave the pending budget.
func TestWriterDropsBlocksOfPartitionsThatMoved(t *testing.T) {
	cfg := DefaultConfig()
	w := NewWriter(&cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), newMetrics(1, nil))
	w.budget.init(100, w.m)
	var owner0, owner1 atomic.Int64
	kept := &block{partition: 0, late: &lateRows{pos: make([]Position, 3)}, owner: &owner0}
	moved := &block{partition: 1, late: &lateRows{pos: make([]Position, 5)}, owner: &owner1}
	for _, b := range []*block{kept, moved} {
		if err := w.budget.acquire(t.Context(), b.rows()); err != nil {
			t.Fatal(err)
		}
	}
	owner1.Add(1) // partition 1 is lost after its block was cut
	got := w.dropStale([]*block{kept, moved})
	if len(got) != 1 || got[0] != kept {
		t.Fatalf("dropStale kept %d blocks, want only partition 0's", len(got))
	}
	if w.budget.used != 3 {
		t.Errorf("pending rows %d after the drop, want 3", w.budget.used)
	}
}
