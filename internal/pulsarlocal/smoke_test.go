package pulsarlocal

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

func TestProduceConsume(t *testing.T) {
	for _, tc := range []struct {
		name       string
		partitions int
		batching   bool
	}{
		{"single", 0, false},
		{"batched", 0, true},
		{"partitioned", 4, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewTest(t, Config{})
			topic := "smoke-" + tc.name
			if err := b.CreateTopic(topic, tc.partitions); err != nil {
				t.Fatal(err)
			}
			client := newClient(t, b)
			cons, err := client.Subscribe(pulsar.ConsumerOptions{
				Topic: topic, SubscriptionName: "s", Type: pulsar.Exclusive,
				SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
			})
			if err != nil {
				t.Fatalf("subscribe: %v", err)
			}
			defer cons.Close()
			prod, err := client.CreateProducer(pulsar.ProducerOptions{
				Topic: topic, DisableBatching: !tc.batching, CompressionType: pulsar.LZ4,
			})
			if err != nil {
				t.Fatalf("producer: %v", err)
			}
			defer prod.Close()
			const n = 100
			for i := 0; i < n; i++ {
				prod.SendAsync(context.Background(), &pulsar.ProducerMessage{
					Key: fmt.Sprint(i % 7), Payload: []byte(fmt.Sprint(i)),
				}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
					if err != nil {
						t.Errorf("send: %v", err)
					}
				})
			}
			if err := prod.FlushWithCtx(context.Background()); err != nil {
				t.Fatalf("flush: %v", err)
			}
			seen := make(map[string]bool)
			for len(seen) < n {
				m := receive(t, cons, 10*time.Second)
				if seen[string(m.Payload())] {
					t.Fatalf("duplicate %q", m.Payload())
				}
				seen[string(m.Payload())] = true
				if err := cons.Ack(m); err != nil {
					t.Fatal(err)
				}
			}
			if got, _ := b.MessageCount(topic, -1); got != n {
				t.Errorf("MessageCount = %d, want %d", got, n)
			}
		})
	}
}
