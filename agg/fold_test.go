package agg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// foldRef folds v into one measure's min, max and sum as fold.go says, plainly.
func foldRef(lo, hi, sum, v float64) (float64, float64, float64) {
	if v < lo {
		lo = v
	}
	if v > hi {
		hi = v
	}
	if !math.IsNaN(v) {
		sum += v
	}
	return lo, hi, sum
}

// TestFoldMeasures checks foldMeasures (assembly where there is some, both with and without
// AVX) and foldMeasuresGo against foldRef, bit for bit, for every number of measures, with
// values that the min, max and add instructions treat specially: NaNs, zeros of both signs
// (a sum of -0.0 stays -0.0 when a NaN is folded in), infinities and subnormals.
func TestFoldMeasures(t *testing.T) {
	special := []float64{math.NaN(), math.Float64frombits(0xfff8000000000001), 0, math.Copysign(0, -1),
		math.Inf(1), math.Inf(-1), 5e-324, -5e-324, math.MaxFloat64, -math.MaxFloat64, 1, -1}
	value := func(rng *rand.Rand) float64 {
		if rng.IntN(3) == 0 {
			return special[rng.IntN(len(special))]
		}
		return rng.NormFloat64() * 100
	}
	impls := []struct {
		name string
		fold func(p *uint64, vs *[MaxMeasures]float64, m int)
		avx  bool
	}{
		{"foldMeasures", foldMeasures, hasAVX},
		{"foldMeasures without AVX", foldMeasures, false},
		{"foldMeasuresGo", foldMeasuresGo, hasAVX},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, impl := range impls {
		for m := 1; m <= MaxMeasures; m++ {
			t.Run(fmt.Sprintf("%s/measures=%d", impl.name, m), func(t *testing.T) {
				defer func(avx bool) { hasAVX = avx }(hasAVX)
				hasAVX = impl.avx
				// A row of words around the measures, to see that nothing else is written.
				const pad = 3
				words := make([]uint64, pad+3*m+pad)
				for i := range words {
					words[i] = rng.Uint64()
				}
				want := append([]uint64(nil), words...)
				for range 200 {
					var vs [MaxMeasures]float64
					for k := range vs {
						vs[k] = value(rng)
					}
					for k := range m {
						i := pad + k
						lo, hi, sum := foldRef(math.Float64frombits(want[i]), math.Float64frombits(want[i+m]),
							math.Float64frombits(want[i+2*m]), vs[k])
						want[i], want[i+m], want[i+2*m] = math.Float64bits(lo), math.Float64bits(hi), math.Float64bits(sum)
					}
					impl.fold(&words[pad], &vs, m)
					for i := range words {
						if words[i] != want[i] {
							t.Fatalf("after values %v: word %d is %#x (%v), want %#x (%v)", vs[:m], i,
								words[i], math.Float64frombits(words[i]), want[i], math.Float64frombits(want[i]))
						}
					}
					// Rows are made as newRow makes them, now and then: the values, or for a NaN
					// +Inf, -Inf and 0; and with random words, as the specials above.
					if rng.IntN(8) == 0 {
						for k := range m {
							i := pad + k
							want[i], want[i+m], want[i+2*m] = math.Float64bits(value(rng)), math.Float64bits(value(rng)), math.Float64bits(value(rng))
							words[i], words[i+m], words[i+2*m] = want[i], want[i+m], want[i+2*m]
						}
					}
				}
			})
		}
	}
}

// TestWindowFirstReading checks a row made by a device's first reading: it is Window.empty
// with the reading folded in, measure by measure.
func TestWindowFirstReading(t *testing.T) {
	negZero := math.Copysign(0, -1)
	posInf, negInf := math.Inf(1), math.Inf(-1)
	for _, c := range []struct {
		v              float64
		wantLo, wantHi float64
		wantSum        float64
	}{
		{3.5, 3.5, 3.5, 3.5},
		{math.NaN(), posInf, negInf, 0}, // null: nothing to aggregate
		{negZero, negZero, negZero, 0},  // a sum from +0: -0.0 adds nothing
		{posInf, posInf, posInf, posInf},
		{negInf, negInf, negInf, negInf},
	} {
		spec := Spec{Measures: 5, Statuses: []int32{1, 2}}
		w := NewWindow(spec, 0)
		w.Reset(60_000, 60_000)
		r := Reading{Key: 9, TimeMs: 61_234, Status: 2}
		for m := range spec.Measures {
			r.Values[m] = c.v
		}
		w.Add(&r)
		if w.Len() != 1 || w.Count(0) != 1 || w.StatusCount(0, 0) != 0 || w.StatusCount(0, 1) != 1 || w.Key(0) != 9 {
			t.Fatalf("value %v: row of %d devices, count %d, statuses %d %d, key %d; want 1 row, count 1, statuses 0 1, key 9",
				c.v, w.Len(), w.Count(0), w.StatusCount(0, 0), w.StatusCount(0, 1), w.Key(0))
		}
		if first, last := w.EventTimes(0); first != 61_234 || last != 61_234 {
			t.Fatalf("value %v: event times %d..%d, want 61234..61234", c.v, first, last)
		}
		for m := range spec.Measures {
			lo, hi, sum := w.Measure(0, m)
			for _, x := range [][2]float64{{lo, c.wantLo}, {hi, c.wantHi}, {sum, c.wantSum}} {
				if math.Float64bits(x[0]) != math.Float64bits(x[1]) {
					t.Fatalf("value %v, measure %d: min, max, sum %v %v %v; want %v %v %v (bit for bit)",
						c.v, m, lo, hi, sum, c.wantLo, c.wantHi, c.wantSum)
				}
			}
		}
	}
}
