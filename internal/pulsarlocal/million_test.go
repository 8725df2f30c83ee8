package pulsarlocal

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// TestMillionKeyed sends 1,000,000 keyed messages (10,000 keys) with batching
// and LZ4 to a 64-partition topic and checks that an Exclusive consumer per
// partition receives each exactly once, in order per key.
func TestMillionKeyed(t *testing.T) {
	total, keys := 1_000_000, 10_000
	if raceEnabled || testing.Short() {
		total, keys = 50_000, 1_000
	}
	const partitions = 64
	b := NewTest(t, Config{})
	const topic = "million"
	if err := b.CreateTopic(topic, partitions); err != nil {
		t.Fatal(err)
	}
	client := newClient(t, b)
	start := time.Now()

	var received atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
	}
	perKey := make([][]uint32, partitions) // per partition goroutine: next sequence by key
	for p := 0; p < partitions; p++ {
		cons, err := client.Subscribe(pulsar.ConsumerOptions{
			Topic:                       fmt.Sprintf("%s-partition-%d", topic, p),
			SubscriptionName:            "s",
			Type:                        pulsar.Exclusive,
			SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
		})
		if err != nil {
			t.Fatalf("subscribe partition %d: %v", p, err)
		}
		t.Cleanup(cons.Close)
		next := make([]uint32, keys)
		perKey[p] = next
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				case cm := <-cons.Chan():
					pl := cm.Payload()
					k, seq := binary.BigEndian.Uint32(pl), binary.BigEndian.Uint32(pl[4:])
					if seq != next[k] {
						fail(fmt.Errorf("partition %d key %d: sequence %d, want %d", p, k, seq, next[k]))
					}
					next[k] = seq + 1
					cons.AckID(cm.ID())
					if received.Add(1) == int64(total) {
						close(done)
					}
				}
			}
		}()
	}

	prod, err := client.CreateProducer(pulsar.ProducerOptions{
		Topic:              topic,
		CompressionType:    pulsar.LZ4,
		MaxPendingMessages: 10_000,
	})
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	defer prod.Close()
	seqs := make([]uint32, keys)
	keyNames := make([]string, keys)
	for k := range keyNames {
		keyNames[k] = fmt.Sprintf("device-%d", k)
	}
	var sendErrs atomic.Int64
	for i := 0; i < total; i++ {
		k := i % keys
		pl := make([]byte, 8)
		binary.BigEndian.PutUint32(pl, uint32(k))
		binary.BigEndian.PutUint32(pl[4:], seqs[k])
		seqs[k]++
		prod.SendAsync(context.Background(), &pulsar.ProducerMessage{Key: keyNames[k], Payload: pl},
			func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
				if err != nil {
					sendErrs.Add(1)
				}
			})
	}
	if err := prod.FlushWithCtx(context.Background()); err != nil {
		t.Fatalf("flush: %v", err)
	}
	sent := time.Since(start)
	select {
	case <-done:
	case <-time.After(120 * time.Second):
		t.Fatalf("received %d of %d messages within 120s", received.Load(), total)
	}
	wg.Wait()
	t.Logf("%d messages: sent in %v, all received in %v", total, sent, time.Since(start))
	if n := sendErrs.Load(); n > 0 {
		t.Fatalf("%d send errors", n)
	}
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	var sum uint64
	for _, next := range perKey {
		for _, n := range next {
			sum += uint64(n)
		}
	}
	if sum != uint64(total) {
		t.Errorf("sum of per-key sequences = %d, want %d", sum, total)
	}
	if got, _ := b.MessageCount(topic, -1); got != int64(total) {
		t.Errorf("MessageCount = %d, want %d", got, total)
	}
}
