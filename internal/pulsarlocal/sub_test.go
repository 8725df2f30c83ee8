package pulsarlocal

import (
	"context"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// TestSharedRedeliveryOnClose checks that a Shared consumer's unacknowledged
// messages go to the other consumer when it closes.
func TestSharedRedeliveryOnClose(t *testing.T) {
	const n = 500
	b := NewTest(t, Config{})
	client := newClient(t, b)
	const topic = "shared"
	opts := pulsar.ConsumerOptions{
		Topic: topic, SubscriptionName: "s", Type: pulsar.Shared, ReceiverQueueSize: 50,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
	}
	a, err := client.Subscribe(opts)
	if err != nil {
		t.Fatal(err)
	}
	bc, err := client.Subscribe(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	produceSeq(t, client, topic, n, false)
	receive(t, a, 10*time.Second) // a holds messages without acknowledging any
	a.Close()
	seen := make([]bool, n)
	for got := 0; got < n; {
		m := receive(t, bc, 10*time.Second)
		if i := seqOf(t, m); !seen[i] {
			seen[i] = true
			got++
		}
		bc.Ack(m)
	}
}

// TestNackShared checks that a negatively acknowledged message comes again.
func TestNackShared(t *testing.T) {
	b := NewTest(t, Config{})
	client := newClient(t, b)
	const topic = "nack"
	cons, err := client.Subscribe(pulsar.ConsumerOptions{
		Topic: topic, SubscriptionName: "s", Type: pulsar.Shared, NackRedeliveryDelay: 10 * time.Millisecond,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	produceSeq(t, client, topic, 3, false)
	for i := 0; i < 3; i++ {
		m := receive(t, cons, 10*time.Second)
		if seqOf(t, m) == 1 {
			cons.Nack(m)
		} else {
			cons.Ack(m)
		}
	}
	m := receive(t, cons, 10*time.Second)
	if got := seqOf(t, m); got != 1 {
		t.Fatalf("redelivered message %d, want 1", got)
	}
	if err := cons.Ack(m); err != nil {
		t.Fatal(err)
	}
}

// TestSeekAndUnsubscribe seeks back by publish time to the first message, receives all again,
// then unsubscribes.
func TestSeekAndUnsubscribe(t *testing.T) {
	const n = 10
	b := NewTest(t, Config{})
	client := newClient(t, b)
	const topic = "seek"
	cons, err := client.Subscribe(pulsar.ConsumerOptions{
		Topic: topic, SubscriptionName: "s", SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	produceSeq(t, client, topic, n, false)
	for i := 0; i < n; i++ {
		cons.Ack(receive(t, cons, 10*time.Second))
	}
	if err := cons.SeekByTime(time.Now().Add(-time.Hour)); err != nil {
		t.Fatalf("seek: %v", err)
	}
	for i := 0; i < n; i++ {
		m := receive(t, cons, 10*time.Second)
		if got := seqOf(t, m); got != i {
			t.Fatalf("after seek: message %d, want %d", got, i)
		}
		cons.Ack(m)
	}
	if err := cons.Unsubscribe(); err != nil {
		t.Fatalf("unsubscribe: %v", err)
	}
	if _, err := b.Subscription(topic, -1, "s"); err == nil {
		t.Error("subscription still exists after unsubscribe")
	}
}

// TestReader reads a topic from the earliest message with HasNext, which
// asks GET_LAST_MESSAGE_ID.
func TestReader(t *testing.T) {
	const n = 20
	b := NewTest(t, Config{})
	client := newClient(t, b)
	const topic = "reader"
	produceSeq(t, client, topic, n, true)
	r, err := client.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := 0
	for r.HasNext() {
		m, err := r.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if i := seqOf(t, m); i != got {
			t.Fatalf("reader: message %d, want %d", i, got)
		}
		got++
	}
	if got != n {
		t.Errorf("reader read %d messages, want %d", got, n)
	}
}

// TestExclusiveBusy checks that a second consumer on an Exclusive
// subscription, or one of another type, is refused.
func TestExclusiveBusy(t *testing.T) {
	b := NewTest(t, Config{})
	client := newClient(t, b)
	cons, err := client.Subscribe(pulsar.ConsumerOptions{Topic: "busy", SubscriptionName: "s", Type: pulsar.Exclusive})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	for _, typ := range []pulsar.SubscriptionType{pulsar.Exclusive, pulsar.Shared} {
		c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: "busy", SubscriptionName: "s", Type: typ})
		if err == nil {
			c.Close()
			t.Errorf("second consumer of type %v subscribed", typ)
		}
	}
}
