package pipeline

import (
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Metrics are pipelined's own series. Names are written whole, once, here.
type Metrics struct {
	set *metrics.Set

	bytesIn        *metrics.Counter
	late           *metrics.Counter
	lateWritten    *metrics.Counter
	skipped        *metrics.Counter
	rewinds        *metrics.Counter
	handoverWaits  *metrics.Counter
	deadLettered   *metrics.Counter
	rowsWritten    *metrics.Counter
	blocksWritten  *metrics.Counter
	chErrors       *metrics.Counter
	partialFlushes *metrics.Counter
	flushDuration  *metrics.PrometheusHistogram
	closeToVisible *metrics.PrometheusHistogram
	blockedSink    *metrics.FloatCounter

	openWindows  atomic.Int64
	openKeys     atomic.Int64
	pendingRows  atomic.Int64
	maxPending   int64
	chDown       atomic.Bool
	ready        atomic.Bool
	decodeErrors map[string]*metrics.Counter

	// The partitions' series, by partition: Run makes a partition's as it starts its worker,
	// while Received may be summing them on another goroutine.
	partsMu sync.Mutex
	parts   map[int]*partitionMetrics
}

func newMetrics(maxPendingRows int, reasons []string) *Metrics {
	s := metrics.NewSet()
	m := &Metrics{
		set:            s,
		bytesIn:        s.NewCounter(`pipelined_bytes_received_total`),
		late:           s.NewCounter(`pipelined_late_messages_total`),
		lateWritten:    s.NewCounter(`pipelined_late_rows_written_total`),
		skipped:        s.NewCounter(`pipelined_replayed_messages_skipped_total`),
		rewinds:        s.NewCounter(`pipelined_redelivery_restarts_total`),
		handoverWaits:  s.NewCounter(`pipelined_handover_waits_total`),
		deadLettered:   s.NewCounter(`pipelined_dead_lettered_messages_total`),
		rowsWritten:    s.NewCounter(`pipelined_rows_written_total`),
		blocksWritten:  s.NewCounter(`pipelined_blocks_written_total`),
		chErrors:       s.NewCounter(`pipelined_clickhouse_errors_total`),
		partialFlushes: s.NewCounter(`pipelined_partial_flushes_total`),
		flushDuration:  s.NewPrometheusHistogram(`pipelined_flush_duration_seconds`),
		closeToVisible: s.NewPrometheusHistogram(`pipelined_close_to_visible_seconds`),
		blockedSink:    s.NewFloatCounter(`pipelined_backpressure_seconds_total{stage="clickhouse"}`),
		maxPending:     int64(maxPendingRows),
		decodeErrors:   map[string]*metrics.Counter{},
		parts:          map[int]*partitionMetrics{},
	}
	for _, r := range reasons {
		m.decodeErrors[r] = s.NewCounter(`pipelined_decode_errors_total{reason="` + r + `"}`)
	}
	s.NewGauge(`pipelined_open_windows`, func() float64 { return float64(m.openWindows.Load()) })
	s.NewGauge(`pipelined_open_keys`, func() float64 { return float64(m.openKeys.Load()) })
	s.NewGauge(`pipelined_pending_rows`, func() float64 { return float64(m.pendingRows.Load()) })
	s.NewGauge(`pipelined_memory_pressure_ratio`, func() float64 {
		return float64(m.pendingRows.Load()) / float64(m.maxPending)
	})
	s.NewGauge(`pipelined_clickhouse_up`, func() float64 { return b2f(!m.chDown.Load()) })
	s.NewGauge(`pipelined_ready`, func() float64 { return b2f(m.ready.Load()) })
	return m
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// partitionMetrics are one partition's series, touched only by its worker.
type partitionMetrics struct {
	received     *metrics.Counter
	acked        *metrics.Counter
	ackedEventMs atomic.Int64
}

// partition returns partition p's series, made on its first call: a worker started again for
// the same partition counts on in them, and Received counts them once.
func (m *Metrics) partition(p int) *partitionMetrics {
	m.partsMu.Lock()
	defer m.partsMu.Unlock()
	if pm := m.parts[p]; pm != nil {
		return pm
	}
	l := strconv.Itoa(p)
	pm := &partitionMetrics{
		received: m.set.GetOrCreateCounter(`pipelined_messages_received_total{partition="` + l + `"}`),
		acked:    m.set.GetOrCreateCounter(`pipelined_acked_messages_total{partition="` + l + `"}`),
	}
	m.set.GetOrCreateGauge(`pipelined_acked_event_time_seconds{partition="`+l+`"}`, func() float64 {
		return float64(pm.ackedEventMs.Load()) / 1000
	})
	m.set.GetOrCreateGauge(`pipelined_backlog_lag_seconds{partition="`+l+`"}`, func() float64 {
		ms := pm.ackedEventMs.Load()
		if ms == 0 {
			return 0
		}
		return max(0, float64(time.Now().UnixMilli()-ms)/1000)
	})
	m.parts[p] = pm
	return pm
}

func (m *Metrics) decodeError(reason string) {
	c := m.decodeErrors[reason]
	if c == nil {
		panic(fmt.Sprintf("pipeline: decode error reason %q missing from avrodec.Reasons", reason))
	}
	c.Inc()
}

// WritePrometheus writes pipelined's series, then the Go runtime's and the process's.
func (m *Metrics) WritePrometheus(w io.Writer) {
	m.set.WritePrometheus(w)
	metrics.WriteProcessMetrics(w)
}

// Received returns the number of messages received over all partitions (for progress output).
func (m *Metrics) Received() uint64 {
	m.partsMu.Lock()
	defer m.partsMu.Unlock()
	var n uint64
	for _, p := range m.parts {
		n += p.received.Get()
	}
	return n
}

// DecodeErrors returns the number of messages that could not be decoded, over all reasons.
func (m *Metrics) DecodeErrors() uint64 {
	var n uint64
	for _, c := range m.decodeErrors {
		n += c.Get()
	}
	return n
}

// Late returns the number of late messages.
func (m *Metrics) Late() uint64 { return m.late.Get() }

// RowsWritten returns the number of aggregate rows written to ClickHouse.
func (m *Metrics) RowsWritten() uint64 { return m.rowsWritten.Get() }
