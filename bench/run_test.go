package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/pipelined/pipelined/internal/pulsarlocal"
)

// waitAcked, once the client has exited, gives the broker ackGrace and then fails naming the
// partition still unacknowledged, instead of waiting for the drain's timeout; it returns as
// soon as every partition is acknowledged, whether the client has exited or not.
func TestWaitAckedAfterExit(t *testing.T) {
	const topic = "persistent://public/default/acks"
	b := pulsarlocal.NewTest(t, pulsarlocal.Config{})
	if err := b.CreateTopic(topic, 2); err != nil {
		t.Fatal(err)
	}
	for p := range 2 {
		if err := b.AppendBatch(topic, p, []pulsarlocal.Message{{Payload: []byte("a")}, {Payload: []byte("b")}}); err != nil {
			t.Fatal(err)
		}
	}
	client, err := pulsar.NewClient(pulsar.ClientOptions{URL: b.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	// take receives a partition's two messages on subscription "s", acknowledges them if ack,
	// and closes the consumer, which sends what it has acknowledged.
	take := func(p int, ack bool) {
		t.Helper()
		c, err := client.Subscribe(pulsar.ConsumerOptions{
			Topic:                       fmt.Sprintf("%s-partition-%d", topic, p),
			SubscriptionName:            "s",
			SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for range 2 {
			m, err := c.Receive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if ack {
				if err := c.Ack(m); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	take(0, true)
	take(1, false)

	d := &drainSpec{broker: b, topic: topic, partitions: 2, sub: "s", ackGrace: 20 * time.Millisecond}
	exited := &child{done: make(chan struct{}), err: errors.New("exit status 3")}
	close(exited.done)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = d.waitAcked(ctx, exited)
	if err == nil || !strings.Contains(err.Error(), "partition 1 is not acknowledged") ||
		!strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "Backlog:2") {
		t.Fatalf("waitAcked with partition 1 unacknowledged after the client exited: %v", err)
	}

	take(1, true)
	if _, err := d.waitAcked(ctx, exited); err != nil {
		t.Fatalf("waitAcked with every partition acknowledged, the client exited: %v", err)
	}
	running := &child{done: make(chan struct{})}
	if _, err := d.waitAcked(ctx, running); err != nil {
		t.Fatalf("waitAcked with every partition acknowledged, the client running: %v", err)
	}
}
