package pulsarlocal

import (
	"cmp"
	"slices"
	"sync"

	pb "github.com/pipelined/pipelined/internal/pulsarpb"
)

// entry is one stored ledger entry: the headers-and-payload part of a SEND
// frame exactly as the producer sent it (checksum, metadata, possibly
// compressed batch payload), ready to follow a MESSAGE command.
type entry struct {
	data []byte
	n    int32 // messages in the entry (num_messages_in_batch, or 1)
}

// slabSize is the size of the arena chunks entries are copied into, so that
// millions of entries are a few large allocations for the garbage collector.
const slabSize = 1 << 20

// topic is a non-partitioned topic or one partition of a partitioned topic.
// All fields after mu are guarded by it.
type topic struct {
	name      string // full name, "persistent://public/default/x-partition-3"
	partition int    // index in the partitioned topic, -1 if not a partition

	mu      sync.Mutex
	entries []entry
	msgs    int64 // messages over all entries
	slab    []byte
	subs    map[string]*subscription
}

func newTopic(name string, partition int) *topic {
	return &topic{name: name, partition: partition, subs: make(map[string]*subscription)}
}

// appendLocked copies data into the topic's arena and appends it as an entry
// of n messages; it returns the new entry's ID.
func (t *topic) appendLocked(data []byte, n int32) int64 {
	var buf []byte
	if len(data) > slabSize/4 {
		buf = append([]byte(nil), data...)
	} else {
		if cap(t.slab)-len(t.slab) < len(data) {
			t.slab = make([]byte, 0, slabSize)
		}
		buf = append(t.slab, data...)
		t.slab = buf[len(buf):]
		buf = buf[:len(data):len(data)]
	}
	t.entries = append(t.entries, entry{data: buf, n: n})
	t.msgs += int64(n)
	return int64(len(t.entries) - 1)
}

// dispatchAllLocked lets every subscription send what its consumers have
// permits for.
func (t *topic) dispatchAllLocked() {
	for _, s := range t.subs {
		s.dispatch()
	}
}

// consumer is one consumer of a subscription on one (partition) topic.
// Its fields are guarded by its topic's mu.
type consumer struct {
	c        *conn
	id       uint64
	name     string
	priority int32
	t        *topic
	s        *subscription
	permits  int64
	flowed   bool // sent FLOW at least once: the client has registered its handler
	sentRole int8 // ACTIVE_CONSUMER_CHANGE last sent: 0 none, 1 active, 2 inactive
	closed   bool // detached from its subscription (closed, or disconnected by a seek)
}

// subscription is the cursor of one subscription on one (partition) topic.
// Its fields are guarded by its topic's mu.
type subscription struct {
	t       *topic
	name    string
	typ     pb.CommandSubscribe_SubType
	durable bool

	consumers []*consumer // in subscription order
	active    *consumer   // Exclusive and Failover: the one consumer dispatched to

	markDelete int64              // entries before it are acknowledged
	acked      map[int64]struct{} // acknowledged entries at or after markDelete
	partial    map[int64][]int64  // batch entries partly acknowledged: ack set, bit set = not acknowledged
	readPos    int64              // next entry to read

	// Shared subscriptions only.
	pending   map[int64]*consumer // dispatched, unacknowledged entries
	redeliver []int64             // sorted entry IDs to send again before readPos
	rr        int                 // round-robin start
}

func newSubscription(t *topic, name string, typ pb.CommandSubscribe_SubType, durable bool, start int64) *subscription {
	return &subscription{
		t: t, name: name, typ: typ, durable: durable,
		markDelete: start, readPos: start,
		acked:   make(map[int64]struct{}),
		partial: make(map[int64][]int64),
		pending: make(map[int64]*consumer),
	}
}

func (s *subscription) shared() bool {
	return s.typ == pb.CommandSubscribe_Shared || s.typ == pb.CommandSubscribe_Key_Shared
}

func (s *subscription) isAcked(id int64) bool {
	if id < s.markDelete {
		return true
	}
	_, ok := s.acked[id]
	return ok
}

// dispatch sends entries to consumers with permits.
func (s *subscription) dispatch() {
	if s.shared() {
		s.dispatchShared()
		return
	}
	c := s.active
	if c == nil || c.permits <= 0 || s.readPos >= int64(len(s.t.entries)) {
		return
	}
	if s.readPos < s.markDelete {
		s.readPos = s.markDelete
	}
	out := c.c.lockOut()
	for c.permits > 0 && s.readPos < int64(len(s.t.entries)) {
		id := s.readPos
		s.readPos++
		if _, ok := s.acked[id]; ok {
			continue
		}
		out = s.appendEntryFrame(out, c, id)
	}
	c.c.unlockOut(out)
}

// appendEntryFrame appends the MESSAGE frame of entry id for c and takes its permits.
func (s *subscription) appendEntryFrame(out []byte, c *consumer, id int64) []byte {
	e := s.t.entries[id]
	c.permits -= int64(e.n)
	if ackSet, ok := s.partial[id]; ok {
		cmd := &pb.BaseCommand{
			Type: pb.BaseCommand_MESSAGE.Enum(),
			Message: &pb.CommandMessage{
				ConsumerId: &c.id,
				MessageId:  &pb.MessageIdData{LedgerId: ptr(uint64(ledgerID)), EntryId: ptr(uint64(id))},
				AckSet:     ackSet,
			},
		}
		return appendPayloadFrame(out, cmd, e.data)
	}
	return appendMessageFrame(out, c.id, id, 0, e.data)
}

func (s *subscription) dispatchShared() {
	n := len(s.consumers)
	for progress := true; progress; {
		progress = false
		for i := 0; i < n; i++ {
			c := s.consumers[(s.rr+i)%n]
			if c.permits <= 0 {
				continue
			}
			id, ok := s.nextShared()
			if !ok {
				return
			}
			s.pending[id] = c
			out := c.c.lockOut()
			out = s.appendEntryFrame(out, c, id)
			c.c.unlockOut(out)
			progress = true
		}
		s.rr++
	}
}

// nextShared returns the next entry for a Shared subscription: redeliveries first.
func (s *subscription) nextShared() (int64, bool) {
	for len(s.redeliver) > 0 {
		id := s.redeliver[0]
		s.redeliver = s.redeliver[1:]
		if !s.isAcked(id) {
			return id, true
		}
	}
	if s.readPos < s.markDelete {
		s.readPos = s.markDelete
	}
	for s.readPos < int64(len(s.t.entries)) {
		id := s.readPos
		s.readPos++
		if !s.isAcked(id) {
			return id, true
		}
	}
	return 0, false
}

// ackIndividual acknowledges entry id; a non-empty ackSet with bits still
// set acknowledges only the batch indexes whose bits are clear.
func (s *subscription) ackIndividual(id int64, ackSet []int64) {
	if id < s.markDelete || id >= int64(len(s.t.entries)) {
		return
	}
	if anySet(ackSet) {
		if old, ok := s.partial[id]; ok {
			ackSet = andSets(old, ackSet)
		}
		if anySet(ackSet) {
			s.partial[id] = slices.Clone(ackSet)
			return
		}
	}
	s.acked[id] = struct{}{}
	delete(s.partial, id)
	delete(s.pending, id)
	s.foldAcked()
}

// ackCumulative acknowledges every entry up to and including id.
func (s *subscription) ackCumulative(id int64, ackSet []int64) {
	if id >= int64(len(s.t.entries)) {
		id = int64(len(s.t.entries)) - 1
	}
	if anySet(ackSet) {
		s.ackCumulative(id-1, nil)
		s.ackIndividual(id, ackSet)
		return
	}
	if id < s.markDelete {
		return
	}
	s.markDelete = id + 1
	for k := range s.acked {
		if k < s.markDelete {
			delete(s.acked, k)
		}
	}
	for k := range s.partial {
		if k < s.markDelete {
			delete(s.partial, k)
		}
	}
	for k := range s.pending {
		if k < s.markDelete {
			delete(s.pending, k)
		}
	}
	s.foldAcked()
}

// foldAcked moves markDelete past individually acknowledged entries.
func (s *subscription) foldAcked() {
	for {
		if _, ok := s.acked[s.markDelete]; !ok {
			return
		}
		delete(s.acked, s.markDelete)
		s.markDelete++
	}
}

func anySet(set []int64) bool {
	for _, w := range set {
		if w != 0 {
			return true
		}
	}
	return false
}

func andSets(a, b []int64) []int64 {
	out := make([]int64, min(len(a), len(b)))
	for i := range out {
		out[i] = a[i] & b[i]
	}
	return out
}

// rewind makes every unacknowledged entry eligible for dispatch again.
func (s *subscription) rewind() {
	s.readPos = s.markDelete
	if s.shared() {
		s.redeliver = s.redeliver[:0]
		clear(s.pending)
	}
}

// redeliverShared puts ids (all of c's pending entries when ids is empty)
// back in front of the read position.
func (s *subscription) redeliverShared(c *consumer, ids []int64) {
	if len(ids) == 0 {
		for id, pc := range s.pending {
			if pc == c {
				ids = append(ids, id)
			}
		}
	}
	for _, id := range ids {
		if pc, ok := s.pending[id]; ok && (c == nil || pc == c) {
			delete(s.pending, id)
			if i, found := slices.BinarySearch(s.redeliver, id); !found {
				s.redeliver = slices.Insert(s.redeliver, i, id)
			}
		}
	}
}

// removeConsumer detaches c; its unacknowledged entries go to the others.
func (s *subscription) removeConsumer(c *consumer) {
	c.closed = true
	i := slices.Index(s.consumers, c)
	if i < 0 {
		return
	}
	s.consumers = slices.Delete(s.consumers, i, i+1)
	if s.shared() {
		s.redeliverShared(c, nil)
	} else {
		s.updateActive()
	}
	if len(s.consumers) == 0 && !s.durable {
		delete(s.t.subs, s.name)
		return
	}
	s.dispatch()
}

// updateActive picks the active consumer of an Exclusive or Failover
// subscription. Failover follows Pulsar's PersistentDispatcherSingleActiveConsumer:
// consumers sorted by priority level then name, and among those with the
// highest priority the one at index partition % count is active (index 0 for
// a non-partitioned topic). A new active consumer starts from the
// acknowledged position, so it receives every unacknowledged message.
func (s *subscription) updateActive() {
	var next *consumer
	if len(s.consumers) > 0 {
		if s.typ != pb.CommandSubscribe_Failover {
			next = s.consumers[0]
		} else {
			sorted := slices.Clone(s.consumers)
			slices.SortStableFunc(sorted, func(a, b *consumer) int {
				if c := cmp.Compare(a.priority, b.priority); c != 0 {
					return c
				}
				return cmp.Compare(a.name, b.name)
			})
			n := 1
			for n < len(sorted) && sorted[n].priority == sorted[0].priority {
				n++
			}
			idx := 0
			if s.t.partition >= 0 {
				idx = s.t.partition % n
			}
			next = sorted[idx]
		}
	}
	if next != s.active {
		s.active = next
		s.rewind()
	}
	if s.typ == pb.CommandSubscribe_Failover {
		for _, c := range s.consumers {
			c.notifyRole()
		}
	}
}

// notifyRole sends ACTIVE_CONSUMER_CHANGE when c's role changed since it was
// last told. It waits for c's first FLOW: pulsar-client-go registers the
// consumer's handler only after the SUBSCRIBE response, and drops events for
// an unknown consumer.
func (c *consumer) notifyRole() {
	if !c.flowed {
		return
	}
	role := int8(2)
	if c.s.active == c {
		role = 1
	}
	if role == c.sentRole {
		return
	}
	c.sentRole = role
	c.c.send(&pb.BaseCommand{
		Type: pb.BaseCommand_ACTIVE_CONSUMER_CHANGE.Enum(),
		ActiveConsumerChange: &pb.CommandActiveConsumerChange{
			ConsumerId: ptr(c.id),
			IsActive:   ptr(role == 1),
		},
	})
}

func ptr[T any](v T) *T { return &v }
