package agg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// randomReadings returns n readings from devices devices whose times advance evenly from from
// over span milliseconds, each held back by a random delay up to disorder (bounded disorder).
// Values are multiples of 1/4, so sums are exact in any order; about 5% of them are null.
func randomReadings(rng *rand.Rand, n, devices int, from, span, disorder int64) []Reading {
	rs := make([]Reading, n)
	for i := range rs {
		r := Reading{
			Key:    int64(rng.IntN(devices)) * 7919, // spread out, not 0..n
			TimeMs: from + int64(i)*span/int64(n) - rng.Int64N(disorder+1),
			Status: statusValues[rng.IntN(len(statusValues))],
		}
		for m := range r.Values {
			if rng.IntN(20) == 0 {
				r.Values[m] = math.NaN()
			} else {
				r.Values[m] = float64(rng.IntN(4000)-2000) / 4
			}
		}
		rs[i] = r
	}
	return rs
}

// statusValues are the readings' statuses; the specs list some of them. 33, -31 and 65 fall
// on the same entry of a window's status table as 1.
var statusValues = []int32{-1, 0, 1, 2, 3, 33, -31, 65}

// cell is one device in one window.
type cell struct{ start, key int64 }

func TestStreamProperty(t *testing.T) {
	spec := Spec{Measures: 3, Statuses: []int32{0, 2, -1}}
	// Statuses that share a table entry, so the window looks them up one by one.
	shared := Spec{Measures: 4, Statuses: []int32{1, -31, 2, 33}}
	// Seven measures: Window.Add folds four at a time, then the rest one by one.
	seven := Spec{Measures: 7, Statuses: []int32{0, 1, 2, 3, -1}}
	configs := []StreamConfig{
		{Spec: spec, SizeMs: 60_000, DelayMs: 5_000, LatenessMs: 2_000},
		{Spec: spec, SizeMs: 60_000},
		{Spec: spec, SizeMs: 60_000, DelayMs: 0, LatenessMs: 15_000},
		{Spec: spec, SizeMs: 10_000, DelayMs: 3_000, LatenessMs: 1_000, SizeHint: 4},
		{Spec: shared, SizeMs: 60_000, DelayMs: 5_000, LatenessMs: 2_000},
		{Spec: seven, SizeMs: 60_000, DelayMs: 5_000, LatenessMs: 2_000},
	}
	for ci, cfg := range configs {
		for seed := range uint64(4) {
			for _, detach := range []bool{false, true} {
				name := fmt.Sprintf("config%d/seed%d/detach=%v", ci, seed, detach)
				t.Run(name, func(t *testing.T) {
					rng := rand.New(rand.NewPCG(seed, uint64(ci)))
					// Several minutes, disorder up to 20s, starting before the epoch.
					rs := randomReadings(rng, 5_000, 40, -90_000, 6*60_000, 20_000)
					checkStream(t, NewStream(cfg), rs, rng, detach)
				})
			}
		}
	}
}

// checkStream feeds rs to s as the pipeline would (PrefetchAhead now and then for the readings
// ahead, pop after every reading, release after writing; with detach, now and then flush an
// open window early) and checks the result against a naive map-based computation over the
// readings that were not late.
func checkStream(t *testing.T, s *Stream, rs []Reading, rng *rand.Rand, detach bool) {
	t.Helper()
	cfg := s.Config()
	want := map[cell]row{}
	got := map[cell]row{}
	open := map[int64]bool{} // naive: starts of the windows open now
	maxT := int64(math.MinInt64)
	late, emittedCount, windows := 0, 0, 0
	lastPopped := int64(math.MinInt64)

	emit := func(w *Window, partial bool) {
		windows++
		if !partial {
			if w.Start <= lastPopped {
				t.Fatalf("PopClosed order: got [%d, ...) after [%d, ...), want oldest first", w.Start, lastPopped)
			}
			lastPopped = w.Start
		}
		delete(open, w.Start)
		for _, r := range rows(w) {
			emittedCount += int(r.Count)
			c := cell{w.Start, r.Key}
			prev, seen := got[c]
			if seen && !detach {
				t.Fatalf("device %d in window %d: emitted twice", r.Key, w.Start)
			}
			if !seen {
				prev = emptyRow(r.Key)
			}
			got[c] = naiveMerge(prev, r)
		}
		s.Release(w)
	}

	for i := range rs {
		if rng.IntN(5) == 0 {
			// k == 0, the batch's first groups, a third of the time; otherwise a group start
			// or not, within the batch or past its end.
			k := rng.IntN(3) * rng.IntN(6*PrefetchGroup)
			s.PrefetchAhead(rs[i:min(len(rs), i+rng.IntN(300))], k)
		}
		r := rs[i]
		start := r.TimeMs - ((r.TimeMs%cfg.SizeMs)+cfg.SizeMs)%cfg.SizeMs
		wantLate := maxT != math.MinInt64 && start+cfg.SizeMs+cfg.LatenessMs <= maxT-cfg.DelayMs
		wantOut := Opened
		if wantLate {
			wantOut = Late
		} else if open[start] {
			wantOut = Added
		}
		w, out := s.Add(&r, r.TimeMs)
		if out != wantOut {
			t.Fatalf("reading %d (time %d, max time %d): outcome: got %s, want %s", i, r.TimeMs, maxT, outcomeName(out), outcomeName(wantOut))
		}
		if wantLate {
			late++
		} else {
			if w.Start != start {
				t.Fatalf("reading %d (time %d): window start: got %d, want %d", i, r.TimeMs, w.Start, start)
			}
			open[start] = true
			maxT = max(maxT, r.TimeMs)
			c := cell{start, r.Key}
			prev, ok := want[c]
			if !ok {
				prev = emptyRow(r.Key)
			}
			want[c] = naiveAdd(prev, cfg.Spec, r)
		}
		if got := s.MaxTime(); got != maxT {
			t.Fatalf("reading %d: max time: got %d, want %d", i, got, maxT)
		}
		for w := s.PopClosed(); w != nil; w = s.PopClosed() {
			emit(w, false)
		}
		if detach && rng.IntN(100) == 0 && len(s.Open()) > 0 {
			w := s.Open()[rng.IntN(len(s.Open()))]
			s.Detach(w)
			emit(w, true)
		}
	}
	s.AdvanceTo(maxT + 10*(cfg.SizeMs+cfg.DelayMs+cfg.LatenessMs))
	for w := s.PopClosed(); w != nil; w = s.PopClosed() {
		emit(w, false)
	}
	if n := len(s.Open()); n != 0 {
		t.Fatalf("open windows after the watermark passed them all: got %d, want 0", n)
	}

	if got, want := emittedCount+late, len(rs); got != want {
		t.Fatalf("emitted %d + late %d readings: got %d, want %d", emittedCount, late, got, want)
	}
	if late == 0 || late == len(rs) || windows < 5 {
		t.Fatalf("weak case: %d late of %d readings, %d windows", late, len(rs), windows)
	}
	if len(got) != len(want) {
		t.Fatalf("device-windows: got %d, want %d", len(got), len(want))
	}
	for c, w := range want {
		g, ok := got[c]
		if !ok {
			t.Fatalf("device %d in window %d: got nothing, want %v", c.key, c.start, w)
		}
		if g != w {
			t.Fatalf("device %d in window %d: got %v, want %v", c.key, c.start, g, w)
		}
	}
}
