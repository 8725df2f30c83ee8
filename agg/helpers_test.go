package agg

import (
	"fmt"
	"math"
	"testing"
)

// row is one window row copied out into a comparable value, so that rows compare with !=.
type row struct {
	Key         int64
	Count       uint32
	Status      [16]uint32 // per listed status, unused tail zero
	Lo, Hi, Sum [MaxMeasures]float64
	First, Last int64
}

func (r row) String() string {
	return fmt.Sprintf("{key %d count %d status %v lo %v hi %v sum %v times %d..%d}",
		r.Key, r.Count, r.Status, r.Lo, r.Hi, r.Sum, r.First, r.Last)
}

// emptyRow is a device's row before any reading: the state Window.newRow starts from.
func emptyRow(key int64) row {
	r := row{Key: key, First: math.MaxInt64, Last: math.MinInt64}
	for m := range MaxMeasures {
		r.Lo[m], r.Hi[m] = math.Inf(1), math.Inf(-1)
	}
	return r
}

// rows copies w's rows out in row order. Measures the spec does not aggregate stay as in
// emptyRow, so expectations can be built with naiveAdd.
func rows(w *Window) []row {
	out := make([]row, w.Len())
	spec := w.Spec()
	for i := range out {
		r := emptyRow(w.Key(i))
		r.Count = w.Count(i)
		for j := range spec.Statuses {
			r.Status[j] = w.StatusCount(i, j)
		}
		for m := range spec.Measures {
			r.Lo[m], r.Hi[m], r.Sum[m] = w.Measure(i, m)
		}
		r.First, r.Last = w.EventTimes(i)
		out[i] = r
	}
	return out
}

// naiveAdd folds rd into r the obvious way; it is the reference the Window is checked against.
func naiveAdd(r row, spec Spec, rd Reading) row {
	r.Count++
	for j, s := range spec.Statuses {
		if s == rd.Status {
			r.Status[j]++
		}
	}
	for m := range spec.Measures {
		v := rd.Values[m]
		if math.IsNaN(v) {
			continue
		}
		r.Lo[m] = math.Min(r.Lo[m], v)
		r.Hi[m] = math.Max(r.Hi[m], v)
		r.Sum[m] += v
	}
	r.First = min(r.First, rd.TimeMs)
	r.Last = max(r.Last, rd.TimeMs)
	return r
}

// naiveMerge combines two partial rows of one device, as a reader of partial blocks would.
func naiveMerge(a, b row) row {
	a.Count += b.Count
	for j := range a.Status {
		a.Status[j] += b.Status[j]
	}
	for m := range MaxMeasures {
		a.Lo[m] = math.Min(a.Lo[m], b.Lo[m])
		a.Hi[m] = math.Max(a.Hi[m], b.Hi[m])
		a.Sum[m] += b.Sum[m]
	}
	a.First = min(a.First, b.First)
	a.Last = max(a.Last, b.Last)
	return a
}

// emitted is a window as the sink would see it: its interval and rows.
type emitted struct {
	Start, End int64
	Rows       []row
}

func snapshot(w *Window) emitted { return emitted{Start: w.Start, End: w.End, Rows: rows(w)} }

// checkRows fails t unless got and want hold the same rows in the same order.
func checkRows(t *testing.T, what string, got, want []row) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d rows %v, want %d rows %v", what, len(got), got, len(want), want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: row %d: got %v, want %v", what, i, got[i], want[i])
		}
	}
}

// checkEmitted fails t unless got and want are the same windows in the same order.
func checkEmitted(t *testing.T, what string, got, want []emitted) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d windows, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i].Start != want[i].Start || got[i].End != want[i].End {
			t.Fatalf("%s: window %d: got [%d, %d), want [%d, %d)", what, i,
				got[i].Start, got[i].End, want[i].Start, want[i].End)
		}
		checkRows(t, fmt.Sprintf("%s: window %d", what, i), got[i].Rows, want[i].Rows)
	}
}

// reading builds a Reading with the given values; missing values are zero.
func reading(key, timeMs int64, status int32, values ...float64) Reading {
	r := Reading{Key: key, TimeMs: timeMs, Status: status}
	copy(r.Values[:], values)
	return r
}
