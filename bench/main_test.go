package main

import "testing"

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want float64
	}{
		{[]float64{0.9}, 0.9},
		{[]float64{1.5, 0.5}, 1},
		{[]float64{0.96, 0.84, 0.93}, 0.93},
		{[]float64{1, 4, 2, 3}, 2.5},
	} {
		if got := median(c.xs); got != c.want {
			t.Errorf("median(%v): got %v, want %v", c.xs, got, c.want)
		}
	}
}
