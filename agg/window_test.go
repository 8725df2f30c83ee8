package agg

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// want builds an expected row: measures lists lo, hi, sum triples for the spec's measures.
func wantRow(key int64, count uint32, status []uint32, first, last int64, measures ...float64) row {
	r := emptyRow(key)
	r.Count = count
	copy(r.Status[:], status)
	for m := 0; m+2 < len(measures); m += 3 {
		r.Lo[m/3], r.Hi[m/3], r.Sum[m/3] = measures[m], measures[m+1], measures[m+2]
	}
	r.First, r.Last = first, last
	return r
}

func TestWindowAdd(t *testing.T) {
	nan := math.NaN()
	inf := math.Inf(1)
	spec2 := Spec{Measures: 2, Statuses: []int32{0, 1}}
	tests := []struct {
		name     string
		spec     Spec
		readings []Reading
		want     []row
	}{
		{
			name:     "one reading",
			spec:     spec2,
			readings: []Reading{reading(7, 1000, 1, 20.5, 40)},
			want:     []row{wantRow(7, 1, []uint32{0, 1}, 1000, 1000, 20.5, 20.5, 20.5, 40, 40, 40)},
		},
		{
			name: "devices interleaved keep first-seen row order",
			spec: spec2,
			readings: []Reading{
				reading(3, 1000, 0, 10, 1),
				reading(1, 1001, 0, 5, 2),
				reading(3, 1002, 1, 30, 3),
				reading(2, 1003, 1, -4, 4),
				reading(3, 1004, 0, 20, 5),
				reading(1, 1005, 1, 7, 6),
			},
			want: []row{
				wantRow(3, 3, []uint32{2, 1}, 1000, 1004, 10, 30, 60, 1, 5, 9),
				wantRow(1, 2, []uint32{1, 1}, 1001, 1005, 5, 7, 12, 2, 6, 8),
				wantRow(2, 1, []uint32{0, 1}, 1003, 1003, -4, -4, -4, 4, 4, 4),
			},
		},
		{
			name: "unlisted statuses count only in the total",
			spec: spec2,
			readings: []Reading{
				reading(1, 1000, 0),
				reading(1, 1001, 2),
				reading(1, 1002, -1),
				reading(1, 1003, 1),
				reading(1, 1004, 99),
			},
			want: []row{wantRow(1, 5, []uint32{1, 1}, 1000, 1004, 0, 0, 0, 0, 0, 0)},
		},
		{
			name: "status listed in non-sorted order",
			spec: Spec{Measures: 1, Statuses: []int32{5, -3, 0}},
			readings: []Reading{
				reading(1, 1000, -3, 1),
				reading(1, 1000, -3, 1),
				reading(1, 1000, 0, 1),
				reading(1, 1000, 4, 1),
			},
			want: []row{wantRow(1, 4, []uint32{0, 2, 1}, 1000, 1000, 1, 1, 4)},
		},
		{
			name: "out-of-order times give first and last",
			spec: spec2,
			readings: []Reading{
				reading(1, 5000, 0, 1, 1),
				reading(1, 2000, 0, 1, 1),
				reading(1, 9000, 0, 1, 1),
				reading(1, 1000, 0, 1, 1),
				reading(1, 7000, 0, 1, 1),
			},
			want: []row{wantRow(1, 5, []uint32{5, 0}, 1000, 9000, 1, 1, 5, 1, 1, 5)},
		},
		{
			name: "negative event times",
			spec: spec2,
			readings: []Reading{
				reading(1, -5000, 0, 1, 1),
				reading(1, -9000, 0, 1, 1),
			},
			want: []row{wantRow(1, 2, []uint32{2, 0}, -9000, -5000, 1, 1, 2, 1, 1, 2)},
		},
		{
			name: "NaN measures are skipped",
			spec: spec2,
			readings: []Reading{
				reading(1, 1000, 0, nan, 8),
				reading(1, 1001, 0, 3, nan),
				reading(1, 1002, 0, nan, 2),
				reading(2, 1003, 1, nan, nan),
			},
			want: []row{
				wantRow(1, 3, []uint32{3, 0}, 1000, 1002, 3, 3, 3, 2, 8, 10),
				// A measure null in every reading: min +Inf, max -Inf, sum 0, as documented.
				wantRow(2, 1, []uint32{0, 1}, 1003, 1003, inf, -inf, 0, inf, -inf, 0),
			},
		},
		{
			name: "negative values: max starts below every value",
			spec: Spec{Measures: 1},
			readings: []Reading{
				reading(1, 1000, 0, -10),
				reading(1, 1001, 0, -30),
				reading(1, 1002, 0, -20),
			},
			want: []row{wantRow(1, 3, nil, 1000, 1002, -30, -10, -60)},
		},
		{
			name: "infinite values are values",
			spec: Spec{Measures: 1},
			readings: []Reading{
				reading(1, 1000, 0, inf),
				reading(1, 1001, 0, 2),
			},
			want: []row{wantRow(1, 2, nil, 1000, 1001, 2, inf, inf)},
		},
		{
			name: "only the spec's measures are aggregated",
			spec: Spec{Measures: 1, Statuses: []int32{0}},
			readings: []Reading{
				reading(1, 1000, 0, 1, 100, 100),
				reading(1, 1001, 0, 2, 100, 100),
			},
			want: []row{wantRow(1, 2, []uint32{2}, 1000, 1001, 1, 2, 3)},
		},
		{
			name: "all eight measures",
			spec: Spec{Measures: MaxMeasures},
			readings: []Reading{
				reading(1, 1000, 0, 1, 2, 3, 4, 5, 6, 7, 8),
				reading(1, 1001, 0, 8, 7, 6, 5, 4, 3, 2, 1),
			},
			want: []row{wantRow(1, 2, nil, 1000, 1001,
				1, 8, 9, 2, 7, 9, 3, 6, 9, 4, 5, 9, 4, 5, 9, 3, 6, 9, 2, 7, 9, 1, 8, 9)},
		},
		{
			name: "no measures, no statuses: counts and times only",
			spec: Spec{},
			readings: []Reading{
				reading(1, 1000, 3, 1),
				reading(1, 999, 3, 1),
			},
			want: []row{wantRow(1, 2, nil, 999, 1000)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWindow(tt.spec, 0)
			w.Reset(0, 60_000)
			for i := range tt.readings {
				w.Add(&tt.readings[i])
			}
			checkRows(t, "rows", rows(w), tt.want)
		})
	}
}

func TestWindowReset(t *testing.T) {
	spec := Spec{Measures: 3, Statuses: []int32{0, 1, 2}}
	w := NewWindow(spec, 4)
	w.Reset(0, 60_000)
	rng := rand.New(rand.NewPCG(1, 2))
	fill := make([]Reading, 1000)
	for i := range fill {
		fill[i] = reading(int64(i), int64(rng.IntN(60_000)), int32(rng.IntN(4)), rng.Float64(), rng.Float64(), rng.Float64())
	}
	for i := range fill {
		w.Add(&fill[i])
	}
	if got, want := w.Len(), 1000; got != want {
		t.Fatalf("len before reset: got %d, want %d", got, want)
	}
	size := w.SizeBytes()

	w.Reset(120_000, 60_000)
	if got, want := w.Len(), 0; got != want {
		t.Fatalf("len after reset: got %d, want %d", got, want)
	}
	for i, s := range w.slots {
		if s.row != 0 {
			t.Fatalf("index after reset: slot %d holds device %d", i, s.key)
		}
	}
	if w.Start != 120_000 || w.End != 180_000 {
		t.Fatalf("interval after reset: got [%d, %d), want [120000, 180000)", w.Start, w.End)
	}
	if got := w.SizeBytes(); got != size {
		t.Fatalf("memory after reset: got %d bytes, want %d", got, size)
	}

	// A device seen before the reset starts a fresh row.
	r := reading(999, 130_000, 1, 5, 6, 7)
	w.Add(&r)
	checkRows(t, "after reset", rows(w), []row{wantRow(999, 1, []uint32{0, 1, 0}, 130_000, 130_000, 5, 5, 5, 6, 6, 6, 7, 7, 7)})

	// Refilling to the old size fits in the kept memory.
	allocs := testing.AllocsPerRun(1, func() {
		w.Reset(0, 60_000)
		for i := range fill {
			w.Add(&fill[i])
		}
	})
	if allocs != 0 {
		t.Fatalf("allocations refilling a reset window: got %v, want 0", allocs)
	}
	if got := w.SizeBytes(); got != size {
		t.Fatalf("memory after refill: got %d bytes, want %d", got, size)
	}
}

func TestSpecValidate(t *testing.T) {
	seventeen := make([]int32, 17)
	sixteen := make([]int32, 16)
	for i := range seventeen {
		seventeen[i] = int32(i)
	}
	copy(sixteen, seventeen)
	tests := []struct {
		name    string
		spec    Spec
		wantErr string // "" when valid; else a part of the message that names the bad value
	}{
		{name: "one measure", spec: Spec{Measures: 1}},
		{name: "four measures, four statuses", spec: Spec{Measures: 4, Statuses: []int32{0, 1, 2, 3}}},
		{name: "max measures", spec: Spec{Measures: MaxMeasures}},
		{name: "sixteen statuses", spec: Spec{Measures: 1, Statuses: sixteen}},
		{name: "negative statuses", spec: Spec{Measures: 1, Statuses: []int32{-1, -2}}},
		// Spec.Measures is documented as 1..MaxMeasures (and pipeline config wants 1 to 8).
		{name: "zero measures", spec: Spec{Measures: 0}, wantErr: "measures 0"},
		{name: "negative measures", spec: Spec{Measures: -1}, wantErr: "measures -1"},
		{name: "too many measures", spec: Spec{Measures: MaxMeasures + 1}, wantErr: "measures 9"},
		{name: "seventeen statuses", spec: Spec{Measures: 1, Statuses: seventeen}, wantErr: "at most 16"},
		{name: "duplicate status", spec: Spec{Measures: 1, Statuses: []int32{0, 3, 1, 3}}, wantErr: "3 is listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate(%+v): got %v, want nil", tt.spec, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate(%+v): got nil, want an error containing %q", tt.spec, tt.wantErr)
			}
			if got := err.Error(); !strings.Contains(got, tt.wantErr) {
				t.Fatalf("Validate(%+v): got %q, want it to contain %q", tt.spec, got, tt.wantErr)
			}
		})
	}
}

// benchReadings returns n readings of 4 measures and 4 statuses for devices chosen at random
// among devices, with zero times: callers set the time.
func benchReadings(n, devices int, seed uint64) []Reading {
	rng := rand.New(rand.NewPCG(seed, 1))
	rs := make([]Reading, n)
	for i := range rs {
		rs[i] = Reading{
			Key:    int64(rng.IntN(devices)) + 1_000_000,
			Status: int32(rng.IntN(5)), // 0..3 listed, 4 unlisted
			Values: [MaxMeasures]float64{
				15 + 10*rng.Float64(), 40 + 20*rng.Float64(), 990 + 20*rng.Float64(), 100 * rng.Float64(),
			},
		}
	}
	return rs
}

var benchSpec = Spec{Measures: 4, Statuses: []int32{0, 1, 2, 3}}

// BenchmarkWindowAdd is one window taking readings from 100,000 devices, all rows created.
func BenchmarkWindowAdd(b *testing.B) {
	const devices = 100_000
	rs := benchReadings(1<<20, devices, 1)
	w := NewWindow(benchSpec, 0)
	w.Reset(0, 60_000)
	for i := range rs { // warm up: the map and slices grow to (nearly) every device
		w.Add(&rs[i])
	}
	for k := range devices { // and then to every device, so no row is created while timed
		r := rs[0]
		r.Key = int64(k) + 1_000_000
		w.Add(&r)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		w.Add(&rs[i&(len(rs)-1)])
	}
}

// BenchmarkWindowMemory reports the bytes a window holds per device row, measured as the live
// heap a window with 100,000 devices retains and as Window.SizeBytes estimates it.
func BenchmarkWindowMemory(b *testing.B) {
	const devices = 100_000
	for _, bc := range []struct {
		name string
		hint int
	}{{"grown", 0}, {"sized", devices}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var heap, est float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				w := NewWindow(benchSpec, bc.hint)
				w.Reset(0, 60_000)
				r := Reading{Values: [MaxMeasures]float64{1, 2, 3, 4}}
				for k := range devices {
					r.Key = int64(k)
					w.Add(&r)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				heap = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(w.Len())
				est = float64(w.SizeBytes()) / float64(w.Len())
				runtime.KeepAlive(w)
			}
			b.ReportMetric(heap, "bytes/device-window")
			b.ReportMetric(est, "sizebytes/device-window")
		})
	}
}

// TestWindowFarEventTimes covers event times too far from Start for a row's 32-bit offsets
// (processing-time windows take readings of any event time): they are kept exactly, also
// across the index growing and a Reset.
func TestWindowFarEventTimes(t *testing.T) {
	const day = 24 * 60 * 60 * 1000
	w := NewWindow(Spec{Measures: 1}, 0)
	for round := range 2 {
		start := int64(1_764_000_000_000 + round*60_000)
		w.Reset(start, 60_000)
		want := map[int64][2]int64{}
		rng := rand.New(rand.NewPCG(9, uint64(round)))
		for i := range 5000 {
			key := int64(rng.IntN(1000))
			var ts int64
			switch i % 4 {
			case 0:
				ts = start + rng.Int64N(60_000)
			case 1:
				ts = start - 40*day - rng.Int64N(day)
			case 2:
				ts = start + 30*day + rng.Int64N(day)
			default:
				ts = start - rng.Int64N(20*day)
			}
			if key%3 == 0 { // a third of the devices only ever see near times
				ts = start + rng.Int64N(60_000)
			}
			r := reading(key, ts, 0, 1)
			w.Add(&r)
			ft, ok := want[key]
			if !ok {
				ft = [2]int64{ts, ts}
			}
			want[key] = [2]int64{min(ft[0], ts), max(ft[1], ts)}
		}
		if w.Len() != len(want) {
			t.Fatalf("round %d: rows: got %d, want %d", round, w.Len(), len(want))
		}
		for i := range w.Len() {
			first, last := w.EventTimes(i)
			if ft := want[w.Key(i)]; first != ft[0] || last != ft[1] {
				t.Fatalf("round %d: device %d: event times [%d, %d], want [%d, %d]", round, w.Key(i), first, last, ft[0], ft[1])
			}
		}
	}
}

// slotAddrs gives the index slot where each reading is looked up first, and rowAddrs both
// cache lines (the first and last word) of the row of each device that has one, and of the
// rows from next on for those that have none, as far as the window's chunks go. With the
// window before (prev), a reading whose event time is in prev gets prev's slot, its row in
// prev if it has one and no hint (rowAddrsWithPrev), and takes no new row of w.
func TestWindowPrefetchAddresses(t *testing.T) {
	w, prev := NewWindow(benchSpec, 0), NewWindow(benchSpec, 0)
	w.Reset(60_000, 60_000)
	prev.Reset(0, 60_000)
	for i, r := range benchReadings(1000, 300, 7) {
		if i%2 == 0 {
			r.TimeMs = 60_000
			w.Add(&r)
		} else {
			prev.Add(&r)
		}
	}
	rows, room := w.Len(), len(w.chunks)*chunkRows
	lines := func(w *Window, i int) []uintptr {
		words := w.row(i)
		return []uintptr{uintptr(unsafe.Pointer(&words[0])), uintptr(unsafe.Pointer(&words[len(words)-1]))}
	}
	slotAddr := func(w *Window, key int64) uintptr {
		return uintptr(unsafe.Pointer(&w.slots[hashKey(key)>>w.shift]))
	}
	for _, withPrev := range []bool{false, true} {
		for _, n := range []int{0, 1, 63, 200} {
			rs := benchReadings(n, 400, 8) // some of these devices have no row
			for k := range rs {
				switch k % 7 {
				case 1, 4: // in prev
					rs[k].TimeMs = 59_999 - int64(k)
				case 5: // before prev: w's (and then late)
					rs[k].TimeMs = -1
				default:
					rs[k].TimeMs = 60_000 + int64(k)
				}
			}
			p := prev
			if !withPrev {
				p = nil
			}
			inPrev := func(r Reading) bool { return withPrev && r.TimeMs >= 0 && r.TimeMs < 60_000 }
			var wantSlots []uintptr
			inW, withRow, prevRows, prevNone := 0, 0, 0, 0
			for _, r := range rs {
				if inPrev(r) {
					wantSlots = append(wantSlots, slotAddr(prev, r.Key))
					if _, row := prev.find(r.Key); row != 0 {
						prevRows++
					} else {
						prevNone++
					}
					continue
				}
				wantSlots = append(wantSlots, slotAddr(w, r.Key))
				inW++
				if _, row := w.find(r.Key); row != 0 {
					withRow++
				}
			}
			a := make([]uintptr, 2*n+1) // room for more than it may write: the count says where it stops
			if got := w.slotAddrs(rs, a, p); !slices.Equal(got, wantSlots) {
				t.Errorf("prev %v, %d readings: slot addresses %x, want %x", withPrev, n, got, wantSlots)
			}
			// next at the first free row, and so near the end of the chunks that some new
			// devices are left without an address.
			for _, next := range []int{rows, room - 5} {
				var wantRows []uintptr
				var wantHints []rowHint
				news := 0
				for _, r := range rs {
					if inPrev(r) {
						wantHints = append(wantHints, rowHint{})
						if _, row := prev.find(r.Key); row != 0 {
							wantRows = append(wantRows, lines(prev, int(row)-1)...)
						}
						continue
					}
					_, row := w.find(r.Key)
					wantHints = append(wantHints, rowHint{key: r.Key, row: row})
					if row != 0 {
						wantRows = append(wantRows, lines(w, int(row)-1)...)
					} else if next+news < room {
						wantRows = append(wantRows, lines(w, next+news)...)
						news++
					}
				}
				hints := make([]rowHint, len(rs))
				for k := range hints {
					hints[k] = rowHint{key: -1, row: -1} // every one is written
				}
				var m, gotNews int
				if withPrev {
					m, gotNews = w.rowAddrsWithPrev(rs, a, next, hints, prev)
				} else {
					m, gotNews = w.rowAddrs(rs, a, next, hints)
				}
				if got := a[:m]; !slices.Equal(got, wantRows) || gotNews != news {
					t.Errorf("prev %v, %d readings, next %d: row addresses %x and %d without a row, want %x and %d", withPrev, n, next, got, gotNews, wantRows, news)
				}
				if !slices.Equal(hints, wantHints) {
					t.Errorf("prev %v, %d readings, next %d: hints %v, want %v", withPrev, n, next, hints, wantHints)
				}
			}
			if n < 200 {
				continue
			}
			if withRow == 0 || inW-withRow <= 5 {
				t.Fatalf("%d readings for w, %d with a row there: the batch must mix devices with and without one, more than 5 without", inW, withRow)
			}
			if withPrev && (prevRows == 0 || prevNone == 0) {
				t.Fatalf("%d readings in prev: %d with a row there, %d without; want both", prevRows+prevNone, prevRows, prevNone)
			}
		}
	}
	if w.Len() != rows {
		t.Fatalf("rows after finding addresses: %d, want %d", w.Len(), rows)
	}
}

// The rows rowAddrs gives devices without one, from the window's next free row on, are where
// Add then puts them, readings added in order.
func TestRowAddrsOfNewRows(t *testing.T) {
	w := NewWindow(benchSpec, 1000)
	w.Reset(0, 60_000)
	for _, r := range benchReadings(300, 200, 7) {
		w.Add(&r)
	}
	seen := map[int64]bool{}
	var rs []Reading
	for _, r := range benchReadings(400, 600, 8) { // each device once
		if !seen[r.Key] {
			seen[r.Key] = true
			rs = append(rs, r)
		}
	}
	a := make([]uintptr, 2*len(rs))
	m, news := w.rowAddrs(rs, a, w.Len(), make([]rowHint, len(rs)))
	if m != len(a) || news == 0 || news == len(rs) {
		t.Fatalf("%d readings: %d addresses, %d without a row; want an address pair each and a mix", len(rs), m, news)
	}
	for k := range rs {
		w.Add(&rs[k])
	}
	for k, r := range rs {
		_, row := w.find(r.Key)
		words := w.row(int(row) - 1)
		if got, want := uintptr(unsafe.Pointer(&words[0])), a[2*k]; got != want {
			t.Fatalf("device %d (reading %d): row at %x, rowAddrs said %x", r.Key, k, got, want)
		}
	}
}
