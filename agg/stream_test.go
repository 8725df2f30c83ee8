package agg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"
)

func TestStreamWindowStart(t *testing.T) {
	tests := []struct {
		size, t, want int64
	}{
		{60_000, 0, 0},
		{60_000, 1, 0},
		{60_000, 59_999, 0},
		{60_000, 60_000, 60_000},
		{60_000, 60_001, 60_000},
		{60_000, 1_234_567, 1_200_000},
		{60_000, -1, -60_000},
		{60_000, -59_999, -60_000},
		{60_000, -60_000, -60_000},
		{60_000, -60_001, -120_000},
		{60_000, 1_764_000_000_123, 1_764_000_000_000 - 1_764_000_000_000%60_000},
		{1, -7, -7},
		{1000, -1000, -1000},
		{1000, -999, -1000},
	}
	for _, tt := range tests {
		s := NewStream(StreamConfig{SizeMs: tt.size})
		if got := s.WindowStart(tt.t); got != tt.want {
			t.Fatalf("WindowStart(%d) with size %d: got %d, want %d", tt.t, tt.size, got, tt.want)
		}
	}
}

// step is one call on a Stream and what must follow from it.
type step struct {
	do     string  // "add", "advance", "restore" or "pop"
	key    int64   // add: the device
	t      int64   // add: the reading's time; advance, restore: the argument
	out    Outcome // add: the outcome wanted
	start  int64   // add: the start of the window the reading must go to, unless Late
	popped []int64 // pop: the starts PopClosed must return, in order, before nil
	max    int64   // advance, restore: the MaxTime wanted after the call
	open   []int64 // the starts of Open() wanted after the step
}

func TestStreamSteps(t *testing.T) {
	spec := Spec{Measures: 1, Statuses: []int32{0}}
	far := StreamConfig{Spec: spec, SizeMs: 60_000, DelayMs: 1_000_000} // nothing closes by itself
	std := StreamConfig{Spec: spec, SizeMs: 60_000, DelayMs: 5_000, LatenessMs: 10_000}
	tight := StreamConfig{Spec: spec, SizeMs: 60_000}
	tests := []struct {
		name  string
		cfg   StreamConfig
		steps []step
	}{
		{
			name: "assignment at boundaries and negative times",
			cfg:  far,
			steps: []step{
				{do: "add", key: 1, t: 0, out: Opened, start: 0, open: []int64{0}},
				{do: "add", key: 1, t: 59_999, out: Added, start: 0, open: []int64{0}},
				{do: "add", key: 2, t: 60_000, out: Opened, start: 60_000, open: []int64{0, 60_000}},
				{do: "add", key: 1, t: -1, out: Opened, start: -60_000, open: []int64{-60_000, 0, 60_000}},
				{do: "add", key: 1, t: -60_000, out: Added, start: -60_000, open: []int64{-60_000, 0, 60_000}},
				{do: "add", key: 1, t: -60_001, out: Opened, start: -120_000, open: []int64{-120_000, -60_000, 0, 60_000}},
				{do: "add", key: 3, t: 119_999, out: Added, start: 60_000, open: []int64{-120_000, -60_000, 0, 60_000}},
				{do: "pop", open: []int64{-120_000, -60_000, 0, 60_000}},
			},
		},
		{
			name: "out-of-order windows are inserted sorted",
			cfg:  far,
			steps: []step{
				{do: "add", key: 1, t: 180_000, out: Opened, start: 180_000, open: []int64{180_000}},
				{do: "add", key: 1, t: 0, out: Opened, start: 0, open: []int64{0, 180_000}},
				{do: "add", key: 1, t: 120_500, out: Opened, start: 120_000, open: []int64{0, 120_000, 180_000}},
				{do: "add", key: 1, t: 60_000, out: Opened, start: 60_000, open: []int64{0, 60_000, 120_000, 180_000}},
				{do: "add", key: 1, t: 240_000, out: Opened, start: 240_000, open: []int64{0, 60_000, 120_000, 180_000, 240_000}},
				{do: "add", key: 2, t: 61_000, out: Added, start: 60_000, open: []int64{0, 60_000, 120_000, 180_000, 240_000}},
				{do: "add", key: 2, t: 179_999, out: Added, start: 120_000, open: []int64{0, 60_000, 120_000, 180_000, 240_000}},
			},
		},
		{
			name: "late exactly at the boundary: closes when watermark >= End+Lateness",
			cfg:  std, // window [0, 60000) closes at watermark 70000, that is max time 75000
			steps: []step{
				{do: "add", key: 1, t: 0, out: Opened, start: 0, open: []int64{0}},
				{do: "add", key: 1, t: 74_999, out: Opened, start: 60_000, open: []int64{0, 60_000}},
				{do: "add", key: 2, t: 59_999, out: Added, start: 0, open: []int64{0, 60_000}},
				{do: "pop", open: []int64{0, 60_000}},
				{do: "add", key: 1, t: 75_000, out: Added, start: 60_000, open: []int64{0, 60_000}},
				// Closed but not yet popped: late all the same, and nothing changes.
				{do: "add", key: 2, t: 59_999, out: Late, open: []int64{0, 60_000}},
				{do: "add", key: 3, t: 0, out: Late, open: []int64{0, 60_000}},
				{do: "pop", popped: []int64{0}, open: []int64{60_000}},
				{do: "add", key: 2, t: 30_000, out: Late, open: []int64{60_000}},
				{do: "add", key: 2, t: 60_000, out: Added, start: 60_000, open: []int64{60_000}},
				{do: "add", key: 2, t: -1, out: Late, open: []int64{60_000}},
			},
		},
		{
			name: "no delay, no lateness: a window closes at its end",
			cfg:  tight,
			steps: []step{
				{do: "add", key: 1, t: 59_999, out: Opened, start: 0, open: []int64{0}},
				{do: "add", key: 1, t: 0, out: Added, start: 0, open: []int64{0}},
				{do: "add", key: 1, t: 60_000, out: Opened, start: 60_000, open: []int64{0, 60_000}},
				{do: "add", key: 1, t: 59_999, out: Late, open: []int64{0, 60_000}},
				{do: "pop", popped: []int64{0}, open: []int64{60_000}},
			},
		},
		{
			name: "PopClosed returns closed windows oldest first, and only those",
			cfg:  StreamConfig{Spec: spec, SizeMs: 60_000, DelayMs: 5_000},
			steps: []step{
				{do: "add", key: 1, t: 10_000, out: Opened, start: 0, open: []int64{0}},
				{do: "add", key: 1, t: 70_000, out: Opened, start: 60_000, open: []int64{0, 60_000}},
				{do: "add", key: 1, t: 130_000, out: Opened, start: 120_000, open: []int64{0, 60_000, 120_000}},
				{do: "add", key: 1, t: 184_999, out: Opened, start: 180_000, open: []int64{0, 60_000, 120_000, 180_000}},
				{do: "pop", popped: []int64{0, 60_000}, open: []int64{120_000, 180_000}},
				{do: "add", key: 1, t: 185_000, out: Added, start: 180_000, open: []int64{120_000, 180_000}},
				{do: "pop", popped: []int64{120_000}, open: []int64{180_000}},
				{do: "pop", open: []int64{180_000}},
			},
		},
		{
			name: "AdvanceTo closes windows and never moves time back",
			cfg:  std,
			steps: []step{
				{do: "advance", t: -5, max: -5},
				{do: "add", key: 1, t: 1_000, out: Opened, start: 0, open: []int64{0}},
				{do: "advance", t: 74_999, max: 74_999, open: []int64{0}},
				{do: "pop", open: []int64{0}},
				{do: "advance", t: 75_000, max: 75_000, open: []int64{0}},
				{do: "advance", t: 10, max: 75_000, open: []int64{0}},
				{do: "add", key: 1, t: 59_000, out: Late, open: []int64{0}},
				{do: "pop", popped: []int64{0}},
				{do: "advance", t: 200_000, max: 200_000},
				{do: "add", key: 1, t: 130_000, out: Late}, // [120000, 180000) closes at watermark 190000
				{do: "add", key: 1, t: 185_000, out: Opened, start: 180_000, open: []int64{180_000}},
			},
		},
		{
			name: "Restore makes older readings late",
			cfg:  std,
			steps: []step{
				{do: "restore", t: 200_000, max: 200_000},
				{do: "restore", t: 100_000, max: 200_000},
				{do: "add", key: 1, t: 100_000, out: Late},
				{do: "add", key: 1, t: 125_000, out: Late}, // [120000, 180000) closes at watermark 190000
				{do: "add", key: 1, t: 185_000, out: Opened, start: 180_000, open: []int64{180_000}},
				{do: "add", key: 1, t: 179_999, out: Late, open: []int64{180_000}},
			},
		},
		{
			name: "Restore never moves time back",
			cfg:  std,
			steps: []step{
				{do: "add", key: 1, t: 300_000, out: Opened, start: 300_000, open: []int64{300_000}},
				{do: "restore", t: 100_000, max: 300_000, open: []int64{300_000}},
				{do: "add", key: 1, t: 250_000, out: Opened, start: 240_000, open: []int64{240_000, 300_000}},
				{do: "restore", t: 314_999, max: 314_999, open: []int64{240_000, 300_000}},
				{do: "pop", open: []int64{240_000, 300_000}},
				{do: "restore", t: 315_000, max: 315_000, open: []int64{240_000, 300_000}},
				{do: "pop", popped: []int64{240_000}, open: []int64{300_000}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runSteps(t, NewStream(tt.cfg), tt.steps)
		})
	}
}

func runSteps(t *testing.T, s *Stream, steps []step) {
	t.Helper()
	for n, st := range steps {
		what := fmt.Sprintf("step %d (%s %d)", n, st.do, st.t)
		switch st.do {
		case "add":
			before, maxBefore := openSnapshots(s), s.MaxTime()
			r := reading(st.key, st.t, 0, float64(st.t))
			w, out := s.Add(&r, st.t)
			if out != st.out {
				t.Fatalf("%s: outcome: got %s, want %s", what, outcomeName(out), outcomeName(st.out))
			}
			if out == Late {
				if w != nil {
					t.Fatalf("%s: late reading: got window [%d, %d), want nil", what, w.Start, w.End)
				}
				if got := s.MaxTime(); got != maxBefore {
					t.Fatalf("%s: late reading moved max time: got %d, want %d", what, got, maxBefore)
				}
				checkEmitted(t, what+": late reading changed open windows", openSnapshots(s), before)
				break
			}
			if w == nil {
				t.Fatalf("%s: got nil window, want [%d, ...)", what, st.start)
			}
			if w.Start != st.start || w.End != st.start+s.Config().SizeMs {
				t.Fatalf("%s: window: got [%d, %d), want [%d, %d)", what, w.Start, w.End, st.start, st.start+s.Config().SizeMs)
			}
			if i := slices.Index(s.Open(), w); i < 0 {
				t.Fatalf("%s: returned window [%d, %d) is not open", what, w.Start, w.End)
			}
		case "advance":
			s.AdvanceTo(st.t)
		case "restore":
			s.Restore(st.t)
		case "pop":
			var got []int64
			for w := s.PopClosed(); w != nil; w = s.PopClosed() {
				got = append(got, w.Start)
			}
			if !slices.Equal(got, st.popped) {
				t.Fatalf("%s: popped: got %v, want %v", what, got, st.popped)
			}
		default:
			t.Fatalf("%s: unknown step", what)
		}
		if st.do == "advance" || st.do == "restore" {
			if got := s.MaxTime(); got != st.max {
				t.Fatalf("%s: max time: got %d, want %d", what, got, st.max)
			}
			if got, want := s.Watermark(), st.max-s.Config().DelayMs; got != want {
				t.Fatalf("%s: watermark: got %d, want %d", what, got, want)
			}
		}
		if got := openStarts(s); !slices.Equal(got, st.open) {
			t.Fatalf("%s: open windows: got %v, want %v", what, got, st.open)
		}
	}
}

func openStarts(s *Stream) []int64 {
	var starts []int64
	for _, w := range s.Open() {
		starts = append(starts, w.Start)
	}
	return starts
}

func openSnapshots(s *Stream) []emitted {
	var out []emitted
	for _, w := range s.Open() {
		out = append(out, snapshot(w))
	}
	return out
}

func TestStreamWatermarkBeforeAnyReading(t *testing.T) {
	s := NewStream(StreamConfig{SizeMs: 60_000, DelayMs: 5_000})
	if got, want := s.Watermark(), int64(math.MinInt64); got != want {
		t.Fatalf("watermark: got %d, want %d", got, want)
	}
	if got, want := s.MaxTime(), int64(math.MinInt64); got != want {
		t.Fatalf("max time: got %d, want %d", got, want)
	}
	if w := s.PopClosed(); w != nil {
		t.Fatalf("PopClosed on a new stream: got [%d, %d), want nil", w.Start, w.End)
	}
	// The first reading is never late, however old.
	r := reading(1, -1_000_000_000_000, 0)
	if _, out := s.Add(&r, r.TimeMs); out != Opened {
		t.Fatalf("first reading: got %s, want %s", outcomeName(out), outcomeName(Opened))
	}
}

func TestStreamProcessingTime(t *testing.T) {
	// With processing time the window follows the arrival time; the row keeps event times.
	s := NewStream(StreamConfig{Spec: Spec{Measures: 1}, SizeMs: 60_000})
	r := reading(1, 5_000, 0, 2)
	w, out := s.Add(&r, 61_000)
	if out != Opened {
		t.Fatalf("outcome: got %s, want %s", outcomeName(out), outcomeName(Opened))
	}
	if w.Start != 60_000 {
		t.Fatalf("window start: got %d, want %d", w.Start, 60_000)
	}
	if got, want := s.MaxTime(), int64(61_000); got != want {
		t.Fatalf("max time: got %d, want %d", got, want)
	}
	checkRows(t, "rows", rows(w), []row{wantRow(1, 1, nil, 5_000, 5_000, 2, 2, 2)})
}

func TestStreamDetach(t *testing.T) {
	s := NewStream(StreamConfig{Spec: Spec{Measures: 1}, SizeMs: 60_000, DelayMs: 1_000_000})
	add := func(key, t int64) (*Window, Outcome) {
		r := reading(key, t, 0, float64(key))
		return s.Add(&r, t)
	}
	w0, _ := add(1, 1_000)
	add(2, 2_000)
	w1, _ := add(1, 61_000)
	w2, _ := add(1, 121_000)
	if got, want := s.Keys(), 4; got != want {
		t.Fatalf("keys: got %d, want %d", got, want)
	}

	s.Detach(w1) // from the middle: order of the rest is kept
	if got, want := openStarts(s), []int64{0, 120_000}; !slices.Equal(got, want) {
		t.Fatalf("open after detaching the middle: got %v, want %v", got, want)
	}
	s.Detach(w0)
	if got, want := openStarts(s), []int64{120_000}; !slices.Equal(got, want) {
		t.Fatalf("open after detaching the oldest: got %v, want %v", got, want)
	}
	if got, want := s.Keys(), 1; got != want {
		t.Fatalf("keys after detach: got %d, want %d", got, want)
	}

	// A later reading for the detached interval opens a fresh window; the detached one is
	// the caller's and is left alone.
	fresh, out := add(3, 3_000)
	if out != Opened {
		t.Fatalf("reading after detach: got %s, want %s", outcomeName(out), outcomeName(Opened))
	}
	if fresh == w0 {
		t.Fatalf("reading after detach: got the detached window, want a fresh one")
	}
	checkRows(t, "fresh window", rows(fresh), []row{wantRow(3, 1, nil, 3_000, 3_000, 3, 3, 3)})
	checkRows(t, "detached window", rows(w0), []row{
		wantRow(1, 1, nil, 1_000, 1_000, 1, 1, 1),
		wantRow(2, 1, nil, 2_000, 2_000, 2, 2, 2),
	})
	if got, want := openStarts(s), []int64{0, 120_000}; !slices.Equal(got, want) {
		t.Fatalf("open after re-opening: got %v, want %v", got, want)
	}

	s.Detach(w2)
	s.Detach(fresh)
	if got := openStarts(s); len(got) != 0 {
		t.Fatalf("open after detaching all: got %v, want none", got)
	}

	defer func() {
		if recover() == nil {
			t.Fatalf("Detach of a window that is not open: got no panic, want one")
		}
	}()
	s.Detach(w0)
}

func TestStreamReleaseReuse(t *testing.T) {
	spec := Spec{Measures: 2, Statuses: []int32{0, 1}}
	s := NewStream(StreamConfig{Spec: spec, SizeMs: 60_000})
	for k := range int64(100) {
		r := reading(k, 1_000+k, int32(k%3), float64(k), -float64(k))
		s.Add(&r, r.TimeMs)
	}
	s.AdvanceTo(60_000)
	old := s.PopClosed()
	if old == nil || old.Len() != 100 {
		t.Fatalf("popped window: got %v, want one with 100 rows", old)
	}
	s.Release(old)

	r := reading(5, 121_000, 1, 7, 8)
	w, out := s.Add(&r, r.TimeMs)
	if out != Opened {
		t.Fatalf("outcome: got %s, want %s", outcomeName(out), outcomeName(Opened))
	}
	if w != old {
		t.Fatalf("new window: got a new allocation, want the released window reused")
	}
	if w.Start != 120_000 || w.End != 180_000 {
		t.Fatalf("reused window: got [%d, %d), want [120000, 180000)", w.Start, w.End)
	}
	checkRows(t, "reused window", rows(w), []row{wantRow(5, 1, []uint32{0, 1}, 121_000, 121_000, 7, 7, 7, 8, 8, 8)})
	if got, want := w.Spec().Measures, spec.Measures; got != want {
		t.Fatalf("reused window spec measures: got %d, want %d", got, want)
	}
}

// feed adds rs in order to s as event-time readings, popping closed windows after every
// reading, and returns the emitted windows (snapshots) and the outcomes.
func feed(s *Stream, rs []Reading, release bool) ([]emitted, []Outcome) {
	var out []emitted
	outcomes := make([]Outcome, len(rs))
	for i := range rs {
		_, outcomes[i] = s.Add(&rs[i], rs[i].TimeMs)
		for w := s.PopClosed(); w != nil; w = s.PopClosed() {
			out = append(out, snapshot(w))
			if release {
				s.Release(w)
			}
		}
	}
	return out, outcomes
}

// drain closes every open window and returns them.
func drain(s *Stream) []emitted {
	cfg := s.Config()
	s.AdvanceTo(s.MaxTime() + 10*(cfg.SizeMs+cfg.DelayMs+cfg.LatenessMs))
	var out []emitted
	for w := s.PopClosed(); w != nil; w = s.PopClosed() {
		out = append(out, snapshot(w))
		s.Release(w)
	}
	if n := len(s.Open()); n != 0 {
		panic(fmt.Sprintf("drain: %d windows still open", n))
	}
	return out
}

func TestStreamDeterministic(t *testing.T) {
	cfg := StreamConfig{
		Spec:   Spec{Measures: 3, Statuses: []int32{0, 1, 2}},
		SizeMs: 60_000, DelayMs: 5_000, LatenessMs: 2_000,
	}
	rs := randomReadings(rand.New(rand.NewPCG(7, 7)), 20_000, 50, 0, 10*60_000, 20_000)

	// One stream reuses released windows, the other never gets them back: same output.
	a, outA := feed(NewStream(cfg), rs, true)
	b, outB := feed(NewStream(cfg), rs, false)
	if !slices.Equal(outA, outB) {
		t.Fatalf("outcomes differ between two fresh streams")
	}
	checkEmitted(t, "emitted windows", a, b)
	if len(a) < 8 {
		t.Fatalf("emitted windows: got %d, want at least 8 for the test to mean something", len(a))
	}

	// And replaying into streams that emitted them one by one, drained at the end, agrees.
	sa, sb := NewStream(cfg), NewStream(cfg)
	a, _ = feed(sa, rs, true)
	b, _ = feed(sb, rs, true)
	a, b = append(a, drain(sa)...), append(b, drain(sb)...)
	checkEmitted(t, "emitted and drained windows", a, b)
}

func outcomeName(o Outcome) string {
	switch o {
	case Added:
		return "Added"
	case Opened:
		return "Opened"
	case Late:
		return "Late"
	}
	return fmt.Sprintf("Outcome(%d)", o)
}

// PrefetchAhead asks for every slot and every row of a batch once, in groups: a reading's slot
// before its row, a group before it once past the first groups, and its row before it is
// added, at least a group before once past the first groups and never more than two groups
// ahead.
func TestPrefetchAheadSchedule(t *testing.T) {
	g := PrefetchGroup
	for _, n := range []int{0, 1, g - 1, g, g + 1, 2 * g, 3*g + 5, 16 * g} {
		slotAt, rowAt := make([]int, n), make([]int, n) // the k before which each was asked for
		for i := range slotAt {
			slotAt[i], rowAt[i] = -1, -1
		}
		for k := range n {
			if k%g != 0 {
				continue // PrefetchAhead asks for nothing there
			}
			slots, rows := ahead(k, n)
			for _, r := range []struct {
				name string
				span [2]int
				at   []int
			}{{"slot", slots, slotAt}, {"row", rows, rowAt}} {
				for j := r.span[0]; j < r.span[1]; j++ {
					if r.at[j] >= 0 {
						t.Fatalf("n=%d: %s of reading %d asked for before readings %d and %d", n, r.name, j, r.at[j], k)
					}
					if j < k {
						t.Fatalf("n=%d: %s of reading %d asked for before reading %d, after it was added", n, r.name, j, k)
					}
					r.at[j] = k
				}
			}
			if slots[1]-slots[0]+2*(rows[1]-rows[0]) > prefetchGroupAddrs {
				t.Fatalf("n=%d, k=%d: %d slots and %d rows: more than %d addresses", n, k, slots[1]-slots[0], rows[1]-rows[0], prefetchGroupAddrs)
			}
		}
		for j := range n {
			switch s, r := slotAt[j], rowAt[j]; {
			case s < 0 || r < 0:
				t.Fatalf("n=%d: reading %d: slot asked for before %d, row before %d; want both asked for", n, j, s, r)
			case s > r:
				t.Fatalf("n=%d: reading %d: slot asked for before reading %d, after its row (%d)", n, j, s, r)
			case j-r > 2*g:
				t.Fatalf("n=%d: reading %d: row asked for before reading %d, more than %d ahead", n, j, r, 2*g)
			case j >= 2*g && (j-r < g || r-s < g):
				t.Fatalf("n=%d: reading %d: slot asked for before reading %d, row before %d; want each at least %d ahead of the next step", n, j, s, r, g)
			}
		}
	}
}

// The rows PrefetchAhead asks for, for devices that have none yet, are the rows Add then
// creates for them, group after group of a batch, when each device comes once: what each
// group's readings will create is counted ahead of the next.
func TestPrefetchAheadNewRows(t *testing.T) {
	s := NewStream(StreamConfig{Spec: benchSpec, SizeMs: 60_000, SizeHint: 2000})
	old := benchReadings(300, 300, 7)
	for k := range old {
		old[k].TimeMs = 1_000
		s.Add(&old[k], old[k].TimeMs)
	}
	seen := map[int64]bool{}
	var rs []Reading
	for _, r := range benchReadings(1500, 1200, 8) { // each device once, about a quarter with a row
		if !seen[r.Key] {
			seen[r.Key] = true
			r.TimeMs = 2_000
			rs = append(rs, r)
		}
	}
	w := s.open[len(s.open)-1]
	hint := make([]uintptr, len(rs)) // the first line PrefetchAhead asked for, by reading
	news := 0
	for k := range rs {
		if k%PrefetchGroup == 0 {
			s.PrefetchAhead(rs, k)
			slots, rows := ahead(k, len(rs))
			a := s.addrs[slots[1]-slots[0]:]
			for j := rows[0]; j < rows[1]; j++ {
				hint[j], a = a[0], a[2:]
			}
		}
		if _, n := w.find(rs[k].Key); n == 0 {
			news++
		}
		if _, out := s.Add(&rs[k], rs[k].TimeMs); out != Added {
			t.Fatalf("reading %d: %v, want Added to the open window", k, out)
		}
	}
	if news < 2*PrefetchGroup || news == len(rs) {
		t.Fatalf("%d of %d devices new: want new devices in several groups, and old ones", news, len(rs))
	}
	for k, r := range rs {
		_, n := w.find(r.Key)
		if got := uintptr(unsafe.Pointer(&w.row(int(n) - 1)[0])); got != hint[k] {
			t.Fatalf("device %d (reading %d): row at %x, PrefetchAhead asked for %x", r.Key, k, got, hint[k])
		}
	}
}

// Near a window boundary, PrefetchAhead asks for the slot and row of a reading held back past
// the newest window's start in the window before, where Add puts it; the rows it asks for the
// newest window's new devices stay those Add creates.
func TestPrefetchAheadPrevWindow(t *testing.T) {
	s := NewStream(StreamConfig{Spec: benchSpec, SizeMs: 60_000, DelayMs: 10_000, SizeHint: 2000})
	for k, r := range benchReadings(600, 300, 7) {
		r.TimeMs = 1_000 + int64(k%2)*60_000 // both windows, [0, 60 s) and [60 s, 120 s)
		s.Add(&r, r.TimeMs)
	}
	if n := len(s.Open()); n != 2 {
		t.Fatalf("open windows: %d, want 2", n)
	}
	prev, w := s.open[0], s.open[1]
	before := map[*Window]int{prev: prev.Len(), w: w.Len()} // the rows made before the batch
	seen := map[int64]bool{}
	var rs []Reading
	for k, r := range benchReadings(1500, 1200, 8) { // each device once
		if !seen[r.Key] {
			seen[r.Key] = true
			r.TimeMs = 62_000
			if k%3 == 0 {
				r.TimeMs = 59_000
			}
			rs = append(rs, r)
		}
	}
	slotAsked, rowAsked := make([]map[uintptr]bool, len(rs)), make([]map[uintptr]bool, len(rs))
	for k := range rs {
		if k%PrefetchGroup == 0 {
			s.addrs = [len(s.addrs)]uintptr{}
			s.PrefetchAhead(rs, k)
			asked := map[uintptr]bool{}
			for _, a := range s.addrs {
				asked[a] = true
			}
			slots, rows := ahead(k, len(rs))
			for j := slots[0]; j < slots[1]; j++ {
				slotAsked[j] = asked
			}
			for j := rows[0]; j < rows[1]; j++ {
				rowAsked[j] = asked
			}
		}
		if got, _ := s.Add(&rs[k], rs[k].TimeMs); got == nil || got.Start > rs[k].TimeMs || rs[k].TimeMs >= got.End {
			t.Fatalf("reading %d (time %d): added to %v", k, rs[k].TimeMs, got)
		}
	}
	inPrev, prevRows, news := 0, 0, 0
	for k, r := range rs {
		ww := w
		if r.TimeMs < w.Start {
			ww, inPrev = prev, inPrev+1
		}
		i, n := ww.find(r.Key)
		if !slotAsked[k][uintptr(unsafe.Pointer(&ww.slots[ww.home(r.Key)]))] {
			t.Fatalf("device %d (reading %d, time %d): slot %d of window %d not asked for", r.Key, k, r.TimeMs, i, ww.Start)
		}
		row := uintptr(unsafe.Pointer(&ww.row(int(n) - 1)[0]))
		isNew := int(n) > before[ww]
		if ww == prev && isNew {
			continue // a new device in prev: its row is not asked for
		}
		if ww == prev {
			prevRows++
		} else if isNew {
			news++
		}
		if !rowAsked[k][row] {
			t.Fatalf("device %d (reading %d, time %d): row %d of window %d not asked for", r.Key, k, r.TimeMs, n-1, ww.Start)
		}
	}
	if inPrev < 2*PrefetchGroup || prevRows == 0 || news < 2*PrefetchGroup {
		t.Fatalf("%d readings in the window before, %d of them with a row there; %d new rows in the newest: want many of each", inPrev, prevRows, news)
	}
}
