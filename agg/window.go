package agg

import (
	"fmt"
	"math"
	"math/bits"
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
// A message touches one slot of the device index and one row, so both are laid out to touch
// as little memory as possible (the rows of 100,000 devices do not fit in a cache):
//
//   - the index is an open-addressing table of 16-byte slots (device id, row number + 1),
//     linear probing, at most 80% full, so a lookup reads one cache line almost always;
//   - a row is a fixed number of 8-byte words, contiguous: min, max, sum per measure as
//     float64, then 32-bit fields packed two to a word: the total count, one count per listed
//     status, the first and last event time as offsets from Start, and the row's index slot
//     (from which Key reads the device id). With 4 measures and 4 statuses a row is 128 bytes:
//     two cache lines, aligned, which the hardware fetches as a pair;
//   - rows live in fixed-size chunks, so a growing window never copies rows and keeps at most
//     one partly used chunk.
//
// An event time more than about 24 days from Start (possible with processing time) does not
// fit an offset; such rows keep their times in a side map.
//
// A Window is owned by one goroutine; Reset keeps its memory for reuse.
type Window struct {
	// Start is the window's first millisecond (epoch ms); End is Start plus the window size.
	Start, End int64

	spec    Spec
	statsW  int // float64 words per row: min, max, sum per measure
	countsW int // 32-bit counters per row: total, then one per listed status
	stride  int // words per row
	n       int // rows
	chunks  [][]uint64
	slots   []slot
	shift   uint               // 64 - log2(len(slots))
	wide    map[int32][2]int64 // rows whose event times do not fit offsets from Start

	// statuses finds a listed status's counter without a loop: entry s%32 counts status s.
	statuses    [32]statusCounter
	statusesAll bool // two listed statuses share an entry: look them up one by one
}

// statusCounter says which row word counts status v, and what to add to it.
type statusCounter struct {
	v    int32
	word int32  // word of the row, after the float64 words
	inc  uint64 // 1 shifted to the counter's half of the word
}

// slot is one entry of a Window's device index.
type slot struct {
	key int64
	row int32 // row number + 1; 0 is an empty slot
	_   int32
}

const (
	chunkShift = 8 // rows per chunk: 256 (32 KiB with 128-byte rows)
	chunkRows  = 1 << chunkShift
	minSlots   = 64
	wideTime   = math.MinInt32 // first-time offset of a row whose times are in Window.wide
)

// NewWindow returns an empty window for spec with room for sizeHint devices.
func NewWindow(spec Spec, sizeHint int) *Window {
	w := &Window{
		spec:    spec,
		statsW:  3 * spec.Measures,
		countsW: 1 + len(spec.Statuses),
	}
	w.stride = w.statsW + (w.countsW+3+1)/2 // counters, first, last, slot: two per word
	for i := range w.statuses {
		w.statuses[i].v = int32(i + 1) // an entry nothing maps to
	}
	for j, v := range spec.Statuses {
		e := &w.statuses[uint32(v)%32]
		if e.inc != 0 {
			w.statusesAll = true
		}
		f := j + 1 // counter 0 is the total
		*e = statusCounter{v: v, word: int32(f >> 1), inc: 1 << (uint(f&1) * 32)}
	}
	slots := minSlots
	for slots*4 < sizeHint*5 {
		slots *= 2
	}
	w.setSlots(slots)
	for range (sizeHint + chunkRows - 1) / chunkRows {
		w.chunks = append(w.chunks, make([]uint64, chunkRows*w.stride))
	}
	return w
}

func (w *Window) setSlots(n int) {
	w.slots = make([]slot, n)
	w.shift = uint(64 - bits.TrailingZeros(uint(n)))
}

// Reset empties the window and moves it to [start, start+size), keeping its memory.
func (w *Window) Reset(start, size int64) {
	w.Start, w.End = start, start+size
	if w.n > 0 {
		clear(w.slots)
	}
	w.n = 0
	clear(w.wide)
}

// Len returns the number of devices (rows) in the window.
func (w *Window) Len() int { return w.n }

// row returns row i's words.
func (w *Window) row(i int) []uint64 {
	c := w.chunks[i>>chunkShift]
	o := (i & (chunkRows - 1)) * w.stride
	return c[o : o+w.stride : o+w.stride]
}

// The 32-bit fields of a row: counters 0..countsW-1, then first, last and slot.
func (w *Window) get32(row []uint64, f int) uint32 {
	return uint32(row[w.statsW+f>>1] >> (uint(f&1) * 32))
}

func (w *Window) set32(row []uint64, f int, v uint32) {
	p := &row[w.statsW+f>>1]
	sh := uint(f&1) * 32
	*p = *p&^(0xffffffff<<sh) | uint64(v)<<sh
}

func hashKey(k int64) uint64 { return uint64(k) * 0x9e3779b97f4a7c15 }

// find returns the index slot of key and its row number + 1; or, for a key without a row, the
// empty slot where it goes and 0.
func (w *Window) find(key int64) (int, int32) {
	mask := len(w.slots) - 1
	for i := int(hashKey(key) >> w.shift); ; i = (i + 1) & mask {
		s := &w.slots[i]
		if s.key == key && s.row != 0 || s.row == 0 {
			return i, s.row
		}
	}
}

// Add folds r into the device's row, creating the row on the device's first reading.
func (w *Window) Add(r *Reading) {
	i, n := w.find(r.Key)
	if n == 0 {
		w.newRow(r, i)
		return
	}
	row := w.row(int(n) - 1)
	for m, v := range r.Values[:w.spec.Measures] {
		// Compared on their own, min and max compile to a compare and a conditional move each:
		// no branch for the processor to mispredict, as it would half the time on a device's
		// first few readings. A NaN (a null measure, not a value) compares false both ways, so
		// it leaves them as they are; only the sum has to test for it.
		st := row[3*m : 3*m+3 : 3*m+3]
		lo, hi, b := st[0], st[1], math.Float64bits(v)
		if v < math.Float64frombits(lo) {
			lo = b
		}
		if v > math.Float64frombits(hi) {
			hi = b
		}
		st[0], st[1] = lo, hi
		if v == v {
			st[2] = math.Float64bits(math.Float64frombits(st[2]) + v)
		}
	}
	row[w.statsW] += 1 // the total count: the low half of the first counter word
	w.countStatus(row, r.Status)
	// The first and last event time, as offsets from Start: min and max of 32-bit integers,
	// conditional moves again. A time too far from Start for an offset goes to the side map.
	fi := w.countsW
	first, last := int32(w.get32(row, fi)), int32(w.get32(row, fi+1))
	d := r.TimeMs - w.Start
	if first == wideTime || d <= math.MinInt32 || d > math.MaxInt32 {
		w.addWideTime(row, r.TimeMs)
		return
	}
	w.set32(row, fi, uint32(min(first, int32(d))))
	w.set32(row, fi+1, uint32(max(last, int32(d))))
}

// countStatus adds one to row's counter of status st, if st is listed.
func (w *Window) countStatus(row []uint64, st int32) {
	if w.statusesAll {
		for j, s := range w.spec.Statuses {
			if s == st {
				f := j + 1
				row[w.statsW+f>>1] += 1 << (uint(f&1) * 32)
				return
			}
		}
		return
	}
	if e := &w.statuses[uint32(st)%32]; e.v == st {
		row[w.statsW+int(e.word)] += e.inc
	}
}

// prefetch loads, for every reading in rs, the index slot and the row of its device, and
// returns a sum of what it read so that the loads are not optimised away. The loads of
// different readings do not depend on each other, so the processor overlaps their cache misses;
// Add, one reading at a time, would wait for each miss in turn (index slot, then row). The
// rows are found first (their slots are in the cache by then) and loaded in a loop of their
// own, 64 at a time: a few instructions per row, so more of the misses are in flight at once
// than with the lookups in between (BenchmarkHotPath/devices=100000, 7 pairs alternating: 92-104
// ns against 97-108).
func (w *Window) prefetch(rs []Reading) uint64 {
	var sum uint64
	for k := range rs {
		sum += uint64(w.slots[hashKey(rs[k].Key)>>w.shift].key)
	}
	var rows [64]int32
	for len(rs) > 0 {
		m := min(len(rs), len(rows))
		for k := range rs[:m] {
			_, rows[k] = w.find(rs[k].Key)
		}
		for _, n := range rows[:m] {
			if n != 0 {
				row := w.row(int(n) - 1)
				sum += row[0] + row[len(row)-1] // both cache lines of a 128-byte row
			}
		}
		rs = rs[m:]
	}
	return sum
}

// addWideTime keeps row's times in the side map once one does not fit an offset.
func (w *Window) addWideTime(row []uint64, t int64) {
	fi := w.countsW
	slotIdx := int32(w.get32(row, fi+2))
	ft, ok := w.wide[slotIdx]
	if !ok {
		first, last := int64(int32(w.get32(row, fi)))+w.Start, int64(int32(w.get32(row, fi+1)))+w.Start
		ft = [2]int64{first, last}
		if w.wide == nil {
			w.wide = map[int32][2]int64{}
		}
		w.set32(row, fi, uint32(wideTime&math.MaxUint32))
	}
	ft[0], ft[1] = min(ft[0], t), max(ft[1], t)
	w.wide[slotIdx] = ft
}

// newRow creates the row of r's device in empty slot i and folds r into it.
func (w *Window) newRow(r *Reading, i int) {
	if (w.n+1)*5 > len(w.slots)*4 {
		w.grow()
		i, _ = w.find(r.Key) // the empty slot again, in the larger table
	}
	n := w.n
	if n>>chunkShift == len(w.chunks) {
		w.chunks = append(w.chunks, make([]uint64, chunkRows*w.stride))
	}
	w.n++
	w.slots[i] = slot{key: r.Key, row: int32(n + 1)}
	row := w.row(n)
	for m, v := range r.Values[:w.spec.Measures] {
		st := row[3*m : 3*m+3 : 3*m+3]
		if v != v {
			st[0], st[1], st[2] = math.Float64bits(math.Inf(1)), math.Float64bits(math.Inf(-1)), 0
			continue
		}
		b := math.Float64bits(v)
		st[0], st[1], st[2] = b, b, b
	}
	for k := w.statsW + 1; k < len(row); k++ {
		row[k] = 0
	}
	row[w.statsW] = 1
	w.countStatus(row, r.Status)
	fi := w.countsW
	w.set32(row, fi+2, uint32(i))
	if d := r.TimeMs - w.Start; d > math.MinInt32 && d <= math.MaxInt32 {
		w.set32(row, fi, uint32(int32(d)))
		w.set32(row, fi+1, uint32(int32(d)))
		return
	}
	if w.wide == nil {
		w.wide = map[int32][2]int64{}
	}
	w.set32(row, fi, uint32(wideTime&math.MaxUint32))
	w.wide[int32(i)] = [2]int64{r.TimeMs, r.TimeMs}
}

// grow doubles the index and re-homes every row's slot.
func (w *Window) grow() {
	old := w.slots
	w.setSlots(2 * len(old))
	var wide map[int32][2]int64
	if len(w.wide) > 0 {
		wide = make(map[int32][2]int64, len(w.wide))
	}
	fi := w.countsW
	for _, s := range old {
		if s.row == 0 {
			continue
		}
		i, _ := w.find(s.key) // keys are unique: the empty slot where it goes
		w.slots[i] = s
		row := w.row(int(s.row) - 1)
		if wide != nil && int32(w.get32(row, fi)) == wideTime {
			wide[int32(i)] = w.wide[int32(w.get32(row, fi+2))]
		}
		w.set32(row, fi+2, uint32(i))
	}
	if wide != nil {
		w.wide = wide
	}
}

// Key returns row i's device id.
func (w *Window) Key(i int) int64 {
	return w.slots[w.get32(w.row(i), w.countsW+2)].key
}

// Count returns how many readings row i aggregates.
func (w *Window) Count(i int) uint32 { return w.get32(w.row(i), 0) }

// StatusCount returns how many of row i's readings had status Spec.Statuses[j].
func (w *Window) StatusCount(i, j int) uint32 { return w.get32(w.row(i), 1+j) }

// Measure returns row i's min, max and sum of measure m. A measure that was null in every
// reading has min +Inf, max -Inf and sum 0.
func (w *Window) Measure(i, m int) (lo, hi, sum float64) {
	st := w.row(i)[3*m : 3*m+3]
	return math.Float64frombits(st[0]), math.Float64frombits(st[1]), math.Float64frombits(st[2])
}

// EventTimes returns the first and last event time (epoch ms) of row i's readings.
func (w *Window) EventTimes(i int) (first, last int64) {
	row := w.row(i)
	fi := w.countsW
	f := int32(w.get32(row, fi))
	if f == wideTime {
		t := w.wide[int32(w.get32(row, fi+2))]
		return t[0], t[1]
	}
	return int64(f) + w.Start, int64(int32(w.get32(row, fi+1))) + w.Start
}

// Spec returns what the window aggregates.
func (w *Window) Spec() Spec { return w.spec }

// SizeBytes estimates the window's memory: its row chunks plus the index.
func (w *Window) SizeBytes() int {
	return len(w.chunks)*chunkRows*w.stride*8 + len(w.slots)*16
}
