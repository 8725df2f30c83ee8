package agg

import (
	"fmt"
	"math"
)

// Spec says what is aggregated for every device in a window.
type Spec struct {
	// Measures is how many of Reading.Values are aggregated (min, max, sum each); 1..MaxMeasures.
	Measures int
	// Statuses lists the status values counted one by one; a reading with any other status is
	// counted only in the total, so "other" is Count minus the listed ones.
	Statuses []int32
}

// Validate reports a Spec that cannot be aggregated.
func (s Spec) Validate() error {
	if s.Measures < 1 || s.Measures > MaxMeasures {
		return fmt.Errorf("measures %d: want 1..%d", s.Measures, MaxMeasures)
	}
	if len(s.Statuses) > 16 {
		return fmt.Errorf("statuses %v: at most 16 values are counted", s.Statuses)
	}
	seen := map[int32]bool{}
	for _, v := range s.Statuses {
		if seen[v] {
			return fmt.Errorf("statuses %v: %d is listed twice", s.Statuses, v)
		}
		seen[v] = true
	}
	return nil
}

// Window holds one tumbling window's aggregates for one stream, a row per device.
//
// The rows are kept as a few flat slices rather than a struct per device: a message touches one
// row's stats (contiguous) and one row's counters, and a flush reads them column by column.
// A Window is owned by one goroutine; Reset keeps every slice's capacity for reuse.
type Window struct {
	// Start is the window's first millisecond (epoch ms); End is Start plus the window size.
	Start, End int64

	spec    Spec
	statsW  int // float64s per row: min, max, sum per measure
	countsW int // uint32s per row: total, then one per listed status
	index   map[int64]int32
	keys    []int64
	stats   []float64
	counts  []uint32
	times   []int64 // first and last event time per row
}

// NewWindow returns an empty window for spec with room for sizeHint devices.
func NewWindow(spec Spec, sizeHint int) *Window {
	w := &Window{
		spec:    spec,
		statsW:  3 * spec.Measures,
		countsW: 1 + len(spec.Statuses),
		index:   make(map[int64]int32, sizeHint),
	}
	w.keys = make([]int64, 0, sizeHint)
	w.stats = make([]float64, 0, sizeHint*w.statsW)
	w.counts = make([]uint32, 0, sizeHint*w.countsW)
	w.times = make([]int64, 0, sizeHint*2)
	return w
}

// Reset empties the window and moves it to [start, start+size), keeping its memory.
func (w *Window) Reset(start, size int64) {
	w.Start, w.End = start, start+size
	clear(w.index)
	w.keys = w.keys[:0]
	w.stats = w.stats[:0]
	w.counts = w.counts[:0]
	w.times = w.times[:0]
}

// Len returns the number of devices (rows) in the window.
func (w *Window) Len() int { return len(w.keys) }

// Add folds r into the device's row, creating the row on the device's first reading.
func (w *Window) Add(r *Reading) {
	i, ok := w.index[r.Key]
	if !ok {
		i = w.newRow(r)
	}
	st := w.stats[int(i)*w.statsW : int(i+1)*w.statsW : int(i+1)*w.statsW]
	for m := 0; m+2 < len(st); m += 3 {
		v := r.Values[m/3]
		if v != v { // NaN: a null measure is not a value
			continue
		}
		if v < st[m] {
			st[m] = v
		}
		if v > st[m+1] {
			st[m+1] = v
		}
		st[m+2] += v
	}
	c := w.counts[int(i)*w.countsW : int(i+1)*w.countsW : int(i+1)*w.countsW]
	c[0]++
	for j, s := range w.spec.Statuses {
		if s == r.Status {
			c[j+1]++
			break
		}
	}
	t := w.times[2*int(i) : 2*int(i)+2 : 2*int(i)+2]
	if r.TimeMs < t[0] {
		t[0] = r.TimeMs
	}
	if r.TimeMs > t[1] {
		t[1] = r.TimeMs
	}
}

func (w *Window) newRow(r *Reading) int32 {
	i := int32(len(w.keys))
	w.index[r.Key] = i
	w.keys = append(w.keys, r.Key)
	for range w.spec.Measures {
		w.stats = append(w.stats, math.Inf(1), math.Inf(-1), 0)
	}
	for range w.countsW {
		w.counts = append(w.counts, 0)
	}
	w.times = append(w.times, math.MaxInt64, math.MinInt64)
	return i
}

// Key returns row i's device id.
func (w *Window) Key(i int) int64 { return w.keys[i] }

// Count returns how many readings row i aggregates.
func (w *Window) Count(i int) uint32 { return w.counts[i*w.countsW] }

// StatusCount returns how many of row i's readings had status Spec.Statuses[j].
func (w *Window) StatusCount(i, j int) uint32 { return w.counts[i*w.countsW+1+j] }

// Measure returns row i's min, max and sum of measure m. A measure that was null in every
// reading has min +Inf, max -Inf and sum 0.
func (w *Window) Measure(i, m int) (lo, hi, sum float64) {
	st := w.stats[i*w.statsW+3*m:]
	return st[0], st[1], st[2]
}

// EventTimes returns the first and last event time (epoch ms) of row i's readings.
func (w *Window) EventTimes(i int) (first, last int64) { return w.times[2*i], w.times[2*i+1] }

// Spec returns what the window aggregates.
func (w *Window) Spec() Spec { return w.spec }

// SizeBytes estimates the window's memory: its slices' capacity plus the index.
func (w *Window) SizeBytes() int {
	// A Go map entry of int64 -> int32 costs about 16 bytes of slot plus control and slack.
	return cap(w.keys)*8 + cap(w.stats)*8 + cap(w.counts)*4 + cap(w.times)*8 + len(w.index)*24
}
