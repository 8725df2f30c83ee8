package prefetch

import (
	"slices"
	"testing"
)

// Lines is a hint: addresses that are not the program's, or past the end of what it holds,
// neither fault nor change anything.
func TestLinesNeverFaults(t *testing.T) {
	buf := make([]byte, 100)
	for i := range buf {
		buf[i] = byte(i)
	}
	want := slices.Clone(buf)
	a := Addr(&buf[0])
	Lines(nil)
	Lines([]uintptr{
		0, 1, 63, // the zero page
		a, a + 99, a + 100, a + 1<<20, // the buffer, its end and far past it
		^uintptr(0), ^uintptr(0) &^ 63, 1 << 63, // not user addresses
	})
	if !slices.Equal(buf, want) {
		t.Fatalf("buffer after Lines: %v, want %v", buf, want)
	}
}

// Ahead asks for every item of a batch once, never after its group has started, and past the
// first groups exactly dist groups ahead.
func TestAhead(t *testing.T) {
	for _, c := range []struct{ n, group, dist int }{
		{0, 16, 2}, {1, 16, 2}, {15, 16, 1}, {16, 16, 2}, {17, 16, 2}, {47, 16, 2}, {48, 16, 2}, {49, 16, 1}, {256, 16, 2}, {100, 8, 3},
	} {
		asked := make([]int, c.n) // the group start at which each item was asked for, -1 if not
		for i := range asked {
			asked[i] = -1
		}
		for k := 0; k < c.n; k += c.group {
			from, to := Ahead(k, c.n, c.group, c.dist)
			for i := from; i < to; i++ {
				if asked[i] >= 0 {
					t.Fatalf("%+v: item %d asked for at %d and again at %d", c, i, asked[i], k)
				}
				asked[i] = k
			}
		}
		for i, k := range asked {
			g := i - i%c.group // the start of item i's group
			switch {
			case k < 0:
				t.Errorf("%+v: item %d never asked for", c, i)
			case k > g:
				t.Errorf("%+v: item %d asked for at %d, after its group started at %d", c, i, k, g)
			case k > 0 && g-k != c.dist*c.group:
				t.Errorf("%+v: item %d asked for at %d, not %d groups ahead of %d", c, i, k, c.dist, g)
			}
		}
	}
}
