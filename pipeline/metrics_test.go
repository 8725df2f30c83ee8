package pipeline

import "testing"

// TestMetricsPartitionsWhileReceived makes the partitions' series while Received sums them, as
// Run starts its workers while a caller follows the progress (the end-to-end tests do): under
// the race detector, which make test runs this package with, it fails when the two share the
// partitions unguarded. A partition's series made a second time are the same, counted once.
func TestMetricsPartitionsWhileReceived(t *testing.T) {
	m := newMetrics(1_000, nil)
	const parts = 64
	const sum = parts * (parts + 1) / 2 // partition p counts p+1 messages
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := range parts {
			m.partition(p).received.Add(p + 1)
		}
	}()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		if n := m.Received(); n > sum {
			t.Fatalf("Received = %d while the partitions were made, more than the %d added", n, sum)
		}
	}
	if n := m.Received(); n != sum {
		t.Fatalf("Received = %d, want %d", n, sum)
	}
	if a, b := m.partition(3), m.partition(3); a != b {
		t.Fatal("partition(3) made twice gave two sets of series")
	}
	m.partition(3).received.Inc()
	if n := m.Received(); n != sum+1 {
		t.Fatalf("after one more message on partition 3, Received = %d, want %d", n, sum+1)
	}
}
