package agg

import (
	"fmt"
	"math"
	"math/bits"
	"unsafe"

	"github.com/pipelined/pipelined/internal/prefetch"
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
//   - a row is a fixed number of 8-byte words, contiguous: first the fields every reading
//     updates at fixed places, 32-bit halves of two words (the total count and the row's index
//     slot, from which Key reads the device id; the first and last event time as offsets from
//     Start), then the measures' mins, maxes and sums as float64, each an array, so that they
//     fold as vectors (fold.go), then one 32-bit count per listed status, two to a word. With
//     4 measures and 4 statuses a row is 128 bytes: two cache lines, aligned, which the
//     hardware fetches as a pair;
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
	closeAt    int64  // the watermark that closes the window (Stream.closeAt), set by its Stream
	gen        uint64 // how many times Reset has emptied it: a row number holds for one generation

	spec   Spec
	stride int // words per row
	n      int // rows
	chunks [][]uint64
	slots  []slot
	shift  uint               // 64 - log2(len(slots))
	wide   map[int32][2]int64 // rows whose event times do not fit offsets from Start

	// statuses finds a listed status's counter without a loop: entry s%32 counts status s.
	statuses    [32]statusCounter
	statusesAll bool // two listed statuses share an entry: look them up one by one

	// empty is a row before its first reading: no count, times that any offset replaces,
	// measures that any value replaces (min +Inf, max -Inf, sum 0), no statuses.
	empty []uint64
}

// The fixed words of a row, before the measures.
const (
	wCountSlot = 0 // low half: readings; high half: the row's index slot
	wTimes     = 1 // low half: first event time; high half: last; offsets from Start
	wMeasures  = 2 // the measures' mins, then their maxes, then their sums (fold.go)
)

// statusCounter says which row word counts status v, and what to add to it.
type statusCounter struct {
	v    int32
	word int32  // word of the row
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
	w := &Window{spec: spec}
	w.stride = w.statusWord(0) + (len(spec.Statuses)+1)/2
	for i := range w.statuses {
		w.statuses[i].v = int32(i + 1) // an entry nothing maps to
	}
	for j, v := range spec.Statuses {
		e := &w.statuses[uint32(v)%32]
		if e.inc != 0 {
			w.statusesAll = true
		}
		*e = statusCounter{v: v, word: int32(w.statusWord(j)), inc: 1 << (uint(j&1) * 32)}
	}
	w.empty = make([]uint64, w.stride)
	setTimes(w.empty, math.MaxInt32, math.MinInt32)
	for m := range spec.Measures {
		w.empty[wMeasures+m], w.empty[wMeasures+spec.Measures+m] = math.Float64bits(math.Inf(1)), math.Float64bits(math.Inf(-1))
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

// statusWord returns the row word that counts listed status j, in its half j&1.
func (w *Window) statusWord(j int) int { return wMeasures + 3*w.spec.Measures + j>>1 }

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
	w.gen++
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

// slotOf returns the index slot of the row whose words are row.
func slotOf(row []uint64) int { return int(row[wCountSlot] >> 32) }

// setSlot records the row's index slot i, keeping its count.
func setSlot(row []uint64, i int) {
	row[wCountSlot] = row[wCountSlot]&math.MaxUint32 | uint64(uint32(i))<<32
}

// times returns row's first and last event time offsets (first is wideTime when they are in
// Window.wide).
func times(row []uint64) (first, last int32) {
	t := row[wTimes]
	return int32(t), int32(t >> 32)
}

func setTimes(row []uint64, first, last int32) {
	row[wTimes] = uint64(uint32(first)) | uint64(uint32(last))<<32
}

func hashKey(k int64) uint64 { return uint64(k) * 0x9e3779b97f4a7c15 }

// home returns the index slot where key is looked up first (& 63: no test for shifts past 63).
func (w *Window) home(key int64) int { return int(hashKey(key) >> (w.shift & 63)) }

// find returns the index slot of key and its row number + 1; or, for a key without a row, the
// empty slot where it goes and 0.
func (w *Window) find(key int64) (int, int32) {
	mask := len(w.slots) - 1
	for i := w.home(key); ; i = (i + 1) & mask {
		s := &w.slots[i]
		if s.row == 0 || s.key == key {
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
	w.addTo(r, n)
}

// addTo folds r into row n-1 (n as find returns it), the row of r's device.
func (w *Window) addTo(r *Reading, n int32) {
	// The row's words through its address (rowAt): every offset below is less than the
	// stride, so in the row, and none needs the bounds checks a slice of the row costs.
	p := w.rowAt(int(n) - 1)
	h := (*[2]uint64)(p) // the fixed words, wCountSlot and wTimes
	// The first and last event time, as offsets from Start: min and max of 32-bit integers,
	// which compile to conditional moves rather than branches that depend on arrival order. A
	// time too far from Start for an offset goes to the side map.
	first, last := int32(h[wTimes]), int32(h[wTimes]>>32)
	h[wCountSlot]++ // the total count: the low half
	if d := r.TimeMs - w.Start; first != wideTime && d > math.MinInt32 && d <= math.MaxInt32 {
		h[wTimes] = uint64(uint32(min(first, int32(d)))) | uint64(uint32(max(last, int32(d))))<<32
	} else {
		w.addWideTime(w.row(int(n)-1), r.TimeMs)
	}
	w.countStatus(p, r.Status)
	// Last, so that nothing is kept across the call (to assembly on amd64).
	foldMeasures((*uint64)(unsafe.Add(p, 8*wMeasures)), &r.Values, w.spec.Measures)
}

// rowAt returns the address of row i's first word, for a row whose chunk exists (every row
// i < w.n): the chunk holds the row's stride words from there. Add reads and writes the row
// through it, which costs none of the bounds checks and slice arithmetic that row's slice does.
func (w *Window) rowAt(i int) unsafe.Pointer {
	c := w.chunks[i>>chunkShift]
	return unsafe.Add(unsafe.Pointer(unsafe.SliceData(c)), 8*(i&(chunkRows-1))*w.stride)
}

// countStatus adds one to the counter of status st in the row at p (rowAt), if st is listed.
func (w *Window) countStatus(p unsafe.Pointer, st int32) {
	if w.statusesAll {
		for j, s := range w.spec.Statuses {
			if s == st {
				*(*uint64)(unsafe.Add(p, 8*w.statusWord(j))) += 1 << (uint(j&1) * 32)
				return
			}
		}
		return
	}
	if e := &w.statuses[uint32(st)%32]; e.v == st {
		*(*uint64)(unsafe.Add(p, 8*int(e.word))) += e.inc
	}
}

// slotAddrs writes to a the address of the index slot where each reading of rs is looked up
// first, and returns them (a[:len(rs)]): in w, or in prev, the window before w (nil: none),
// for a reading whose event time is in prev. Near a window boundary the readings held back by
// the stream's disorder go there, and their rows are as far from the cache as w's.
func (w *Window) slotAddrs(rs []Reading, a []uintptr, prev *Window) []uintptr {
	a = a[:len(rs)]
	for k := range rs {
		a[k] = prefetch.Addr(&w.slots[w.home(rs[k].Key)])
	}
	if prev != nil {
		in := prev.span()
		for k := range rs {
			if in.has(rs[k].TimeMs) {
				a[k] = prefetch.Addr(&prev.slots[prev.home(rs[k].Key)])
			}
		}
	}
	return a
}

// timeSpan is a window's interval [start, start+size), kept in locals by the loops that test
// a reading's time against it: one subtraction and one unsigned compare.
type timeSpan struct {
	start int64
	size  uint64
}

func (w *Window) span() timeSpan { return timeSpan{w.Start, uint64(w.End - w.Start)} }

// has reports whether time t is in the span.
func (s timeSpan) has(t int64) bool { return uint64(t-s.start) < s.size }

// rowAddrs writes to a, for each reading of rs, the addresses of its row's first and last word
// (both cache lines of a 128-byte row), and returns how many it wrote and how many readings had
// no row; a must have room for two per reading. It writes to hints, one per reading, the
// device and the row number + 1 it found (0: none yet). A device without a row is given the
// rows from next on, where newRow will put the rows of the devices that have none, in order,
// as long as readings before them create as many as next assumes. Indexing a rather than
// appending to it keeps the loop's values in registers (growing a slice is a call).
func (w *Window) rowAddrs(rs []Reading, a []uintptr, next int, hints []rowHint) (int, int) {
	a, hints = a[:2*len(rs)], hints[:len(rs)]
	j, news, rows := 0, 0, len(w.chunks)<<chunkShift
	for k := range rs {
		_, n := w.find(rs[k].Key)
		hints[k] = rowHint{key: rs[k].Key, row: n}
		i := int(n) - 1
		if n == 0 {
			if i = next + news; i >= rows {
				continue // its chunk is not there yet
			}
			news++
		}
		p := uintptr(w.rowAt(i))
		a[j], a[j+1] = p, p+uintptr(8*(w.stride-1))
		j += 2
	}
	return j, news
}

// rowAddrsWithPrev is rowAddrs for readings some of whose event times are in prev, the window
// before w (slotAddrs): such a reading gets its row in prev, if it has one, and no hint (Add
// looks it up), and counts for nothing in w; the runs of readings between them go to
// rowAddrs.
func (w *Window) rowAddrsWithPrev(rs []Reading, a []uintptr, next int, hints []rowHint, prev *Window) (int, int) {
	a, hints = a[:2*len(rs)], hints[:len(rs)]
	in := prev.span()
	j, news, from := 0, 0, 0
	for k := range len(rs) + 1 {
		if k < len(rs) && !in.has(rs[k].TimeMs) {
			continue
		}
		m, n := w.rowAddrs(rs[from:k], a[j:], next+news, hints[from:k])
		j, news, from = j+m, news+n, k+1
		if k == len(rs) {
			break
		}
		hints[k] = rowHint{}
		if _, n := prev.find(rs[k].Key); n != 0 {
			p := uintptr(prev.rowAt(int(n) - 1))
			a[j], a[j+1] = p, p+uintptr(8*(prev.stride-1))
			j += 2
		}
	}
	return j, news
}

// rowHint is a device's row in a window, as rowAddrs found it: its row number + 1 (0: none).
type rowHint struct {
	key int64
	row int32
}

// addWideTime keeps row's times in the side map once one does not fit an offset.
func (w *Window) addWideTime(row []uint64, t int64) {
	slotIdx := int32(slotOf(row))
	ft, ok := w.wide[slotIdx]
	if !ok {
		first, last := times(row)
		ft = [2]int64{int64(first) + w.Start, int64(last) + w.Start}
		if w.wide == nil {
			w.wide = map[int32][2]int64{}
		}
		setTimes(row, wideTime, 0)
	}
	ft[0], ft[1] = min(ft[0], t), max(ft[1], t)
	w.wide[slotIdx] = ft
}

// newRow creates the row of r's device in empty slot i, as w.empty, and folds r into it.
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
	copy(row, w.empty)
	setSlot(row, i)
	if d := r.TimeMs - w.Start; d <= math.MinInt32 || d > math.MaxInt32 {
		if w.wide == nil {
			w.wide = map[int32][2]int64{}
		}
		setTimes(row, wideTime, 0)
		w.wide[int32(i)] = [2]int64{r.TimeMs, r.TimeMs}
	}
	w.addTo(r, int32(n+1))
}

// grow doubles the index and re-homes every row's slot.
func (w *Window) grow() {
	old := w.slots
	w.setSlots(2 * len(old))
	var wide map[int32][2]int64
	if len(w.wide) > 0 {
		wide = make(map[int32][2]int64, len(w.wide))
	}
	for _, s := range old {
		if s.row == 0 {
			continue
		}
		i, _ := w.find(s.key) // keys are unique: the empty slot where it goes
		w.slots[i] = s
		row := w.row(int(s.row) - 1)
		if first, _ := times(row); wide != nil && first == wideTime {
			wide[int32(i)] = w.wide[int32(slotOf(row))]
		}
		setSlot(row, i)
	}
	if wide != nil {
		w.wide = wide
	}
}

// Key returns row i's device id.
func (w *Window) Key(i int) int64 { return w.slots[slotOf(w.row(i))].key }

// Count returns how many readings row i aggregates.
func (w *Window) Count(i int) uint32 { return uint32(w.row(i)[wCountSlot]) }

// StatusCount returns how many of row i's readings had status Spec.Statuses[j].
func (w *Window) StatusCount(i, j int) uint32 {
	return uint32(w.row(i)[w.statusWord(j)] >> (uint(j&1) * 32))
}

// Measure returns row i's min, max and sum of measure m. A measure that was null in every
// reading has min +Inf, max -Inf and sum 0.
func (w *Window) Measure(i, m int) (lo, hi, sum float64) {
	row, ms := w.row(i), w.spec.Measures
	return math.Float64frombits(row[wMeasures+m]), math.Float64frombits(row[wMeasures+ms+m]),
		math.Float64frombits(row[wMeasures+2*ms+m])
}

// EventTimes returns the first and last event time (epoch ms) of row i's readings.
func (w *Window) EventTimes(i int) (first, last int64) {
	row := w.row(i)
	f, l := times(row)
	if f == wideTime {
		t := w.wide[int32(slotOf(row))]
		return t[0], t[1]
	}
	return int64(f) + w.Start, int64(l) + w.Start
}

// Spec returns what the window aggregates.
func (w *Window) Spec() Spec { return w.spec }

// SizeBytes estimates the window's memory: its row chunks plus the index.
func (w *Window) SizeBytes() int {
	return len(w.chunks)*chunkRows*w.stride*8 + len(w.slots)*16
}
