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
