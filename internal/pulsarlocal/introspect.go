package pulsarlocal

import (
	"fmt"
	"math/bits"
)

// MessageCount returns the number of messages stored in a partition of topic,
// or with partition -1 in all its partitions (or the non-partitioned topic).
func (b *Broker) MessageCount(topic string, partition int) (int64, error) {
	ts, err := b.partitionsOf(topic, partition)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, t := range ts {
		t.mu.Lock()
		n += t.msgs
		t.mu.Unlock()
	}
	return n, nil
}

func (b *Broker) partitionsOf(name string, partition int) ([]*topic, error) {
	if partition < 0 {
		return b.topicPartitions(name)
	}
	t, err := b.lookupTopic(name, partition)
	if err != nil {
		return nil, err
	}
	return []*topic{t}, nil
}

// SubscriptionState is the acknowledgement state of a subscription on one
// (partition) topic.
type SubscriptionState struct {
	MarkDelete   int64 // entries (ledger entry IDs) before it are acknowledged
	AckedEntries int   // entries at or after MarkDelete acknowledged individually
	Backlog      int64 // messages not acknowledged
	Consumers    int   // attached consumers
}

// Subscription returns the state of subscription sub on a partition of topic
// (partition -1 for a non-partitioned topic).
func (b *Broker) Subscription(topic string, partition int, sub string) (SubscriptionState, error) {
	t, err := b.lookupTopic(topic, partition)
	if err != nil {
		return SubscriptionState{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.subs[sub]
	if !ok {
		return SubscriptionState{}, fmt.Errorf("topic %q: no subscription %q", t.name, sub)
	}
	st := SubscriptionState{MarkDelete: s.markDelete, AckedEntries: len(s.acked), Consumers: len(s.consumers)}
	for id := s.markDelete; id < int64(len(t.entries)); id++ {
		if _, ok := s.acked[id]; ok {
			continue
		}
		n := int64(t.entries[id].n)
		if set, ok := s.partial[id]; ok {
			n = 0
			for _, w := range set {
				n += int64(bits.OnesCount64(uint64(w)))
			}
		}
		st.Backlog += n
	}
	return st, nil
}
