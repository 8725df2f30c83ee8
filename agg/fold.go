package agg

import (
	"math"
	"unsafe"
)

// A row keeps its measures' aggregates as three arrays of Spec.Measures words each, from the
// row's word wMeasures on: every measure's min, then every max, then every sum, all float64.
// Laid out so, a reading's values fold into them four measures at a time, as whole vectors:
// foldMeasures is AVX assembly on an amd64 processor that has it (fold_amd64.s: 30
// instructions for SensorData's four measures where Go's scalar code took 64, and the hot
// path 4-5 ns less, bench/RESULTS.md phase 25), and foldMeasuresGo elsewhere; the tests check
// both against a plain fold.
//
// Folding v into a measure: min = v if v < min, max = v if v > max, sum += v if v is not NaN.
// A NaN (a null measure, not a value) compares false both ways, so it leaves min and max as
// they are, which is what the processor's min and max instructions do when their first
// operand is a NaN; for the sum, a NaN is replaced by -0.0, the one value whose addition
// changes no sum, not even -0.0. A new row starts from Window.empty (min +Inf, max -Inf, sum
// +0) and folds its first reading like any other, so a sum is one that starts from zero, as
// SQL's sum() does: a single -0.0 sums to +0.

// foldMeasuresGo folds vs[:m] into the measures of the row whose first min is at p: m mins,
// m maxes and m sums.
func foldMeasuresGo(p *uint64, vs *[MaxMeasures]float64, m int) {
	st := unsafe.Slice(p, 3*m)
	mins, maxs, sums := st[:m:m], st[m:2*m:2*m], st[2*m:3*m:3*m]
	for k, v := range vs[:m] {
		// Compared on their own, min and max compile to a compare and a conditional move
		// each: no branch for the processor to mispredict, as it would half the time on a
		// device's first few readings.
		lo, hi, b := mins[k], maxs[k], math.Float64bits(v)
		if v < math.Float64frombits(lo) {
			lo = b
		}
		if v > math.Float64frombits(hi) {
			hi = b
		}
		mins[k], maxs[k] = lo, hi
		if v == v {
			sums[k] = math.Float64bits(math.Float64frombits(sums[k]) + v)
		}
	}
}
