package pipeline

import (
	"io"
	"log/slog"
	"strings"
	"testing"
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
