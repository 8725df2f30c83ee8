package pulsarlocal

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// produceSeq sends n messages with payloads "0".."n-1" to topic.
func produceSeq(t *testing.T, client pulsar.Client, topic string, n int, batching bool) {
	t.Helper()
	prod, err := client.CreateProducer(pulsar.ProducerOptions{
		Topic: topic, DisableBatching: !batching, CompressionType: pulsar.LZ4, BatchingMaxMessages: 64,
	})
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	defer prod.Close()
	for i := 0; i < n; i++ {
		prod.SendAsync(context.Background(), &pulsar.ProducerMessage{Key: strconv.Itoa(i % 5), Payload: []byte(strconv.Itoa(i))},
			func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
				if err != nil {
					t.Errorf("send: %v", err)
				}
			})
	}
	if err := prod.FlushWithCtx(context.Background()); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

func seqOf(t testing.TB, m pulsar.Message) int {
	t.Helper()
	n, err := strconv.Atoi(string(m.Payload()))
	if err != nil {
		t.Fatalf("payload %q: %v", m.Payload(), err)
	}
	return n
}

// TestCumulativeAckResume acknowledges half of the messages cumulatively,
// closes the consumer and checks that the next consumer gets exactly the rest.
func TestCumulativeAckResume(t *testing.T) {
	for _, tc := range []struct {
		name       string
		batching   bool
		batchIndex bool
	}{
		{"single", false, false},
		{"batched-batch-index-ack", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n, half = 1000, 500
			b := NewTest(t, Config{})
			client := newClient(t, b)
			topic := "cumulative-" + tc.name
			opts := pulsar.ConsumerOptions{
				Topic: topic, SubscriptionName: "s", Type: pulsar.Exclusive,
				SubscriptionInitialPosition:    pulsar.SubscriptionPositionEarliest,
				EnableBatchIndexAcknowledgment: tc.batchIndex,
			}
			cons, err := client.Subscribe(opts)
			if err != nil {
				t.Fatalf("subscribe: %v", err)
			}
			produceSeq(t, client, topic, n, tc.batching)
			var last pulsar.Message
			for i := 0; i < half; i++ {
				last = receive(t, cons, 10*time.Second)
				if got := seqOf(t, last); got != i {
					t.Fatalf("first consumer: message %d, want %d", got, i)
				}
			}
			if err := cons.AckCumulative(last); err != nil {
				t.Fatalf("ack cumulative: %v", err)
			}
			cons.Close()
			st, err := b.Subscription(topic, -1, "s")
			if err != nil {
				t.Fatal(err)
			}
			if st.Backlog != n-half || st.Consumers != 0 {
				t.Fatalf("after close: %+v, want backlog %d and no consumers", st, n-half)
			}

			cons2, err := client.Subscribe(opts)
			if err != nil {
				t.Fatalf("subscribe again: %v", err)
			}
			defer cons2.Close()
			for i := half; i < n; i++ {
				m := receive(t, cons2, 10*time.Second)
				if got := seqOf(t, m); got != i {
					t.Fatalf("second consumer: message %d, want %d", got, i)
				}
				if err := cons2.Ack(m); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// roleEvents records failover activations per consumer.
type roleEvents struct {
	name string
	ch   chan string
}

func (r *roleEvents) BecameActive(_ pulsar.Consumer, topic string, partition int32) {
	r.ch <- fmt.Sprintf("%s active %d", r.name, partition)
}

func (r *roleEvents) BecameInactive(_ pulsar.Consumer, topic string, partition int32) {
	r.ch <- fmt.Sprintf("%s inactive %d", r.name, partition)
}

// waitEvents collects events until want is seen or the deadline passes.
func waitEvents(t *testing.T, ch chan string, want ...string) {
	t.Helper()
	pending := make(map[string]bool)
	for _, w := range want {
		pending[w] = true
	}
	deadline := time.After(10 * time.Second)
	for len(pending) > 0 {
		select {
		case ev := <-ch:
			t.Logf("event %s", ev)
			delete(pending, ev)
		case <-deadline:
			t.Fatalf("events not seen within 10s: %v", pending)
		}
	}
}

// TestFailover splits partitions between two Failover consumers by
// partition % consumers over name-sorted consumers, then closes one and
// checks that the other takes over with nothing lost or duplicated.
func TestFailover(t *testing.T) {
	const partitions, n = 4, 4000
	b := NewTest(t, Config{})
	client := newClient(t, b)
	const topic = "failover"
	if err := b.CreateTopic(topic, partitions); err != nil {
		t.Fatal(err)
	}
	events := make(chan string, 100)
	subscribe := func(name string) pulsar.Consumer {
		c, err := client.Subscribe(pulsar.ConsumerOptions{
			Topic: topic, SubscriptionName: "s", Type: pulsar.Failover, Name: name,
			SubscriptionInitialPosition:    pulsar.SubscriptionPositionEarliest,
			EventListener:                  &roleEvents{name: name, ch: events},
			EnableBatchIndexAcknowledgment: true,
		})
		if err != nil {
			t.Fatalf("subscribe %s: %v", name, err)
		}
		return c
	}
	a := subscribe("a")
	// Batch index acks let a's partly consumed batches be acknowledged exactly.
	waitEvents(t, events, "a active 0", "a active 1", "a active 2", "a active 3")
	bc := subscribe("b")
	defer bc.Close()
	waitEvents(t, events, "a inactive 1", "a inactive 3", "b active 1", "b active 3", "b inactive 0", "b inactive 2")

	produceSeq(t, client, topic, n, true)
	counts := make([]int, n)
	byA := 0
	// a receives until it has seen a quarter of the messages, acking each; then it leaves.
	for byA < n/4 {
		m := receive(t, a, 10*time.Second)
		if p := m.ID().PartitionIdx(); p%2 != 0 {
			t.Fatalf("a got a message of partition %d", p)
		}
		counts[seqOf(t, m)]++
		byA++
		a.Ack(m)
	}
	a.Close()
	waitEvents(t, events, "b active 0", "b active 2")
	for seen := byA; seen < n; {
		m := receive(t, bc, 10*time.Second)
		i := seqOf(t, m)
		if counts[i] == 0 {
			seen++
		}
		counts[i]++
		bc.Ack(m)
	}
	for i, c := range counts {
		if c != 1 {
			t.Errorf("message %d received %d times", i, c)
		}
	}
}

// TestFailoverPartitionTopic checks that consumers subscribing to one
// partition topic directly get the same partition % n assignment.
func TestFailoverPartitionTopic(t *testing.T) {
	for _, tc := range []struct {
		partition int
		active    string // of the name-sorted consumers [a b]
	}{
		{3, "b"},
		{2, "a"},
	} {
		t.Run(strconv.Itoa(tc.partition), func(t *testing.T) {
			b := NewTest(t, Config{})
			client := newClient(t, b)
			if err := b.CreateTopic("direct", 4); err != nil {
				t.Fatal(err)
			}
			events := make(chan string, 100)
			for _, name := range []string{"b", "a"} {
				c, err := client.Subscribe(pulsar.ConsumerOptions{
					Topic: fmt.Sprintf("direct-partition-%d", tc.partition), SubscriptionName: "s",
					Type: pulsar.Failover, Name: name, EventListener: &roleEvents{name: name, ch: events},
				})
				if err != nil {
					t.Fatalf("subscribe %s: %v", name, err)
				}
				defer c.Close()
				if name == "b" {
					waitEvents(t, events, "b active 0")
				}
			}
			// The client numbers a directly subscribed partition topic 0.
			if tc.active == "b" {
				waitEvents(t, events, "a inactive 0")
			} else {
				waitEvents(t, events, "a active 0", "b inactive 0")
			}
		})
	}
}
