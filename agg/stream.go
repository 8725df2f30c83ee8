package agg

import (
	"math"

	"github.com/pipelined/pipelined/internal/prefetch"
)

// StreamConfig says how a Stream cuts time into windows and when it closes them.
type StreamConfig struct {
	Spec Spec
	// SizeMs is the tumbling window size in milliseconds.
	SizeMs int64
	// DelayMs holds the watermark back: watermark = highest time seen - DelayMs. It is the
	// disorder the stream tolerates before a window may close.
	DelayMs int64
	// LatenessMs keeps a window open after the watermark passes its end. A window closes when
	// watermark >= End + LatenessMs; a reading for a closed window is late.
	LatenessMs int64
	// SizeHint is the number of devices a new window makes room for.
	SizeHint int
}

// Outcome tells what Stream.Add did with a reading.
type Outcome uint8

// Outcomes of Stream.Add.
const (
	// Added: the reading went into an open window.
	Added Outcome = iota
	// Opened: the reading opened a new window and went into it.
	Opened
	// Late: the reading's window had already closed; nothing was changed.
	Late
)

// Stream keeps the open windows of one ordered stream of readings (one Pulsar partition) and
// its watermark. Every decision it makes (which window, late or not, when a window closes) is
// a function of the readings it was given in order and of AdvanceTo calls, so replaying the
// same readings from the same state gives the same windows.
//
// A Stream is owned by one goroutine.
type Stream struct {
	cfg  StreamConfig
	maxT int64     // highest time seen (or advanced to); math.MinInt64 before any
	wm   int64     // Watermark(), kept with maxT: Add and PopClosed compare with it per reading
	open []*Window // sorted by Start
	free []*Window

	addrs [prefetchGroupAddrs]uintptr // PrefetchAhead's, kept here so as not to clear them each time
	news  int                         // readings without a row in the last group PrefetchAhead asked rows for

	// The rows PrefetchAhead found for the readings of the next group and of this one, by the
	// reading's place in its batch modulo 2*PrefetchGroup, in hintWin's generation hintGen;
	// at is the place it was last called for, which Add looks up.
	hints   [2 * PrefetchGroup]rowHint
	hintWin *Window
	hintGen uint64
	at      int
}

// NewStream returns a stream with no open window.
func NewStream(cfg StreamConfig) *Stream {
	if cfg.SizeMs <= 0 {
		panic("agg: StreamConfig.SizeMs must be positive") // config validation guarantees it
	}
	return &Stream{cfg: cfg, maxT: math.MinInt64, wm: math.MinInt64}
}

// Config returns the stream's configuration.
func (s *Stream) Config() StreamConfig { return s.cfg }

// Watermark returns the highest time seen minus the delay, or math.MinInt64 before any.
func (s *Stream) Watermark() int64 { return s.wm }

// advance moves the highest time seen to t, if t is higher, and the watermark with it.
func (s *Stream) advance(t int64) {
	if t > s.maxT {
		s.maxT, s.wm = t, t-s.cfg.DelayMs
	}
}

// MaxTime returns the highest time seen (or advanced to), math.MinInt64 before any.
func (s *Stream) MaxTime() int64 { return s.maxT }

// Restore sets the highest time seen, as recovered from the sink after a restart, so that the
// replay judges lateness as the uninterrupted run did. It never moves time backwards.
func (s *Stream) Restore(maxT int64) {
	s.advance(maxT)
}

// WindowStart returns the start of the window that holds time t.
func (s *Stream) WindowStart(t int64) int64 {
	m := t % s.cfg.SizeMs
	if m < 0 {
		m += s.cfg.SizeMs
	}
	return t - m
}

// closeAt returns the watermark that closes the window starting at start: its end plus the
// lateness.
func (s *Stream) closeAt(start int64) int64 { return start + s.cfg.SizeMs + s.cfg.LatenessMs }

// closed reports whether a window that the watermark c closes (closeAt) can take no more
// readings.
func (s *Stream) closed(c int64) bool { return c <= s.wm && s.wm != math.MinInt64 }

// Add puts r into the window holding time at (r.TimeMs for event time, the arrival time for
// processing time) and moves the watermark. It returns the window, or nil when r is late.
//
// After PrefetchAhead(rs, k), Add(&rs[k], ...) takes the row PrefetchAhead found for the
// reading, without looking it up again, when the reading goes to the window it was found in;
// a row, once made, stays its device's for the window's generation. Any other reading is
// looked up: the hint is used only for the device it was found for.
func (s *Stream) Add(r *Reading, at int64) (*Window, Outcome) {
	// Most readings go to the newest open window: take it without WindowStart's division.
	if n := len(s.open); n > 0 {
		if w := s.open[n-1]; w.Start <= at && at < w.End && !s.closed(w.closeAt) {
			s.advance(at)
			if h := &s.hints[s.at&(len(s.hints)-1)]; h.row != 0 && h.key == r.Key && s.hintWin == w && s.hintGen == w.gen {
				w.addTo(r, h.row)
			} else {
				w.Add(r)
			}
			return w, Added
		}
	}
	start := s.WindowStart(at)
	if s.closed(s.closeAt(start)) {
		return nil, Late
	}
	s.advance(at)
	out := Added
	var w *Window
	i := len(s.open) - 1
	for ; i >= 0; i-- { // newest first: most readings go to the newest window
		if s.open[i].Start <= start {
			break
		}
	}
	if i >= 0 && s.open[i].Start == start {
		w = s.open[i]
	} else {
		w = s.newWindow(start)
		s.open = append(s.open, nil)
		copy(s.open[i+2:], s.open[i+1:])
		s.open[i+1] = w
		out = Opened
	}
	w.Add(r)
	return w, out
}

// PrefetchAhead readies Add for rs, a batch of readings about to be added in this order: called
// before rs[k] is added, for every k from 0, it asks for the index slots and rows of readings
// further on in the newest open window, where most readings go, with prefetch instructions;
// for a reading whose event time is in the window before it (one held back past a window
// boundary), in that window. It changes nothing; a reading bound for another window simply
// gains nothing (under processing time, where the arrival picks the window, one whose event
// time is still in the window before, just past a boundary).
//
// With rows for a hundred thousand devices (more than the caches hold) a reading costs a
// memory round trip for its index slot and then another for its row. PrefetchAhead works in
// groups of PrefetchGroup readings: at the start of each it asks for the slots of the group
// two ahead and the rows of the next group, whose slots it asked for a group before, so that
// finding a row waits for no slot, and the rows arrive while the readings before them are
// added; a device without a row yet gets the row Add will create for it (rows are made in
// order), which it writes whole. Once per group, it costs one prefetch call for all the
// group's lines. The rows it finds it keeps, so that Add takes a reading's row without looking
// up its index slot again (a load that still waited for memory in the benchmark, though the
// slot had been asked for two groups before).
func (s *Stream) PrefetchAhead(rs []Reading, k int) {
	s.at = k
	if k%PrefetchGroup == 0 {
		s.prefetchGroups(rs, k)
	}
}

// PrefetchGroup is how many readings PrefetchAhead prefetches for at a time, and how far
// ahead: a row between one and two groups before Add needs it, a slot a group before its row.
// Groups of 8 measured slower, of 24 and 32 no faster (bench/RESULTS.md, phase 22).
const PrefetchGroup = 16

// prefetchGroups asks for the slots and rows ahead of the group starting at k.
func (s *Stream) prefetchGroups(rs []Reading, k int) {
	n := len(s.open)
	if n == 0 {
		return
	}
	w := s.open[n-1]
	var prev *Window // where the readings held back past w's start go
	if n > 1 {
		prev = s.open[n-2]
	}
	slots, rows := ahead(k, len(rs))
	a := s.addrs[:]
	m := len(w.slotAddrs(rs[slots[0]:slots[1]], a, prev))
	// The devices without a row get the rows after those the readings before them will create:
	// the group the previous call counted (at a batch's first, none: all are added), then each
	// group of this call's before it.
	if k == 0 {
		s.news = 0
	}
	next := w.Len() + s.news
	// The rows found before, for this group, hold for the window they were found in only.
	if s.hintWin != w || s.hintGen != w.gen {
		s.hints = [len(s.hints)]rowHint{}
		s.hintWin, s.hintGen = w, w.gen
	}
	for from := rows[0]; from < rows[1]; from += PrefetchGroup {
		to := min(from+PrefetchGroup, rows[1])
		h := from & (len(s.hints) - 1) // a group's hints do not wrap: from is a multiple of the group
		var r, news int
		if prev == nil {
			r, news = w.rowAddrs(rs[from:to], a[m:], next, s.hints[h:h+to-from])
		} else {
			r, news = w.rowAddrsWithPrev(rs[from:to], a[m:], next, s.hints[h:h+to-from], prev)
		}
		m, next, s.news = m+r, next+news, news
	}
	prefetch.Lines(a[:m])
}

// prefetchGroupAddrs is the most addresses prefetchGroups asks for at once: at the first
// group, three groups' slots and two groups' rows of two lines each.
const prefetchGroupAddrs = 3*PrefetchGroup + 2*2*PrefetchGroup

// ahead returns the readings [from, to) of a batch of n whose slots, and those whose rows,
// PrefetchAhead asks for at the start of the group at k: the slots of the group two ahead and
// the rows of the next, whose slots were asked for a group before; at k == 0, the slots of
// the first three groups and the rows of the first two.
func ahead(k, n int) (slots, rows [2]int) {
	slots[0], slots[1] = prefetch.Ahead(k, n, PrefetchGroup, 2)
	rows[0], rows[1] = prefetch.Ahead(k, n, PrefetchGroup, 1)
	return slots, rows
}

func (s *Stream) newWindow(start int64) *Window {
	var w *Window
	if n := len(s.free); n > 0 {
		w, s.free = s.free[n-1], s.free[:n-1]
	} else {
		w = NewWindow(s.cfg.Spec, s.cfg.SizeHint)
	}
	w.Reset(start, s.cfg.SizeMs)
	w.closeAt = s.closeAt(start)
	return w
}

// AdvanceTo moves time forward to t without a reading: processing time's clock, or an idle
// partition's. It never moves time backwards.
func (s *Stream) AdvanceTo(t int64) {
	s.advance(t)
}

// PopClosed removes and returns the oldest window that the watermark has closed, or nil.
// The caller owns it until it hands it back with Release.
func (s *Stream) PopClosed() *Window {
	if len(s.open) == 0 || !s.closed(s.open[0].closeAt) {
		return nil
	}
	w := s.open[0]
	copy(s.open, s.open[1:])
	s.open[len(s.open)-1] = nil
	s.open = s.open[:len(s.open)-1]
	return w
}

// Detach removes an open window without closing it: its rows are written as a partial block
// and later readings for the same interval open a fresh window. Used for a flush on shutdown,
// on an idle partition, or under memory pressure.
func (s *Stream) Detach(w *Window) {
	for i, o := range s.open {
		if o == w {
			copy(s.open[i:], s.open[i+1:])
			s.open[len(s.open)-1] = nil
			s.open = s.open[:len(s.open)-1]
			return
		}
	}
	panic("agg: Detach of a window that is not open")
}

// Open returns the open windows, oldest first. The slice is valid until the next call that
// changes the stream.
func (s *Stream) Open() []*Window { return s.open }

// Release hands a window back for reuse once its rows are written.
func (s *Stream) Release(w *Window) {
	if len(s.free) < 4 {
		s.free = append(s.free, w)
	}
}

// Keys returns the number of rows in all open windows.
func (s *Stream) Keys() int {
	n := 0
	for _, w := range s.open {
		n += w.Len()
	}
	return n
}
