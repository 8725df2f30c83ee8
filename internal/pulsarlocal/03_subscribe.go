package pulsarlocal

import (
	"fmt"
	"math"

	pb "github.com/pipelined/pipelined/internal/pulsarpb"
)

// handleSubscribe attaches a consumer to a subscription, creating the topic
// and the subscription on first use.
func (c *conn) handleSubscribe(cmd *pb.CommandSubscribe) error {
	reqID := cmd.GetRequestId()
	if old, ok := c.consumers[cmd.GetConsumerId()]; ok {
		old.t.mu.Lock()
		closed := old.closed
		old.t.mu.Unlock()
		if !closed {
			c.sendSuccess(reqID) // a retried SUBSCRIBE
			return nil
		}
		delete(c.consumers, cmd.GetConsumerId())
	}
	full, err := fullTopicName(cmd.GetTopic())
	if err != nil {
		c.sendError(reqID, pb.ServerError_InvalidTopicName, err.Error())
		return nil
	}
	t, err := c.b.getTopic(full)
	if err != nil {
		c.sendError(reqID, pb.ServerError_TopicNotFound, err.Error())
		return nil
	}
	if s := cmd.GetSchema(); s != nil {
		base, _ := splitPartition(full)
		c.b.mu.Lock()
		_, known := c.b.schemas[base]
		c.b.mu.Unlock()
		if !known {
			c.b.putSchema(full, s)
		}
	}
	typ := cmd.GetSubType()
	durable := cmd.Durable == nil || cmd.GetDurable()

	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.subs[cmd.GetSubscription()]
	if !ok {
		s = newSubscription(t, cmd.GetSubscription(), typ, durable, t.startPosition(cmd))
		t.subs[s.name] = s
	}
	if s.typ != typ && len(s.consumers) > 0 {
		c.sendError(reqID, pb.ServerError_ConsumerBusy,
			fmt.Sprintf("subscription %q on %q is %v, not %v", s.name, t.name, s.typ, typ))
		return nil
	}
	s.typ = typ
	if typ == pb.CommandSubscribe_Exclusive && len(s.consumers) > 0 {
		c.sendError(reqID, pb.ServerError_ConsumerBusy,
			fmt.Sprintf("exclusive subscription %q on %q already has a consumer", s.name, t.name))
		return nil
	}
	cs := &consumer{
		c:        c,
		id:       cmd.GetConsumerId(),
		name:     cmd.GetConsumerName(),
		priority: cmd.GetPriorityLevel(),
		t:        t,
		s:        s,
	}
	c.consumers[cs.id] = cs
	s.consumers = append(s.consumers, cs)
	c.sendSuccess(reqID)
	if !s.shared() {
		s.updateActive()
	}
	s.dispatch()
	return nil
}

// startPosition is where a new subscription starts: for a durable one its
// initial position, for a non-durable one (a reader) its start message ID
// (inclusive; the client skips what it does not want).
func (t *topic) startPosition(cmd *pb.CommandSubscribe) int64 {
	end := int64(len(t.entries))
	if cmd.Durable == nil || cmd.GetDurable() || cmd.StartMessageId == nil {
		if cmd.GetInitialPosition() == pb.CommandSubscribe_Earliest {
			return 0
		}
		return end
	}
	id := cmd.StartMessageId
	switch {
	case int64(id.GetLedgerId()) == math.MaxInt64:
		return end
	case int64(id.GetLedgerId()) < 0 || int64(id.GetEntryId()) < 0:
		return 0
	}
	return min(int64(id.GetEntryId()), end)
}

// handleFlow adds permits (counted in messages) and dispatches.
func (c *conn) handleFlow(cmd *pb.CommandFlow) error {
	cs, ok := c.consumers[cmd.GetConsumerId()]
	if !ok {
		return nil
	}
	cs.t.mu.Lock()
	defer cs.t.mu.Unlock()
	if cs.closed {
		return nil
	}
	cs.permits += int64(cmd.GetMessagePermits())
	if !cs.flowed {
		cs.flowed = true
		if cs.s.typ == pb.CommandSubscribe_Failover {
			cs.notifyRole()
		}
	}
	cs.s.dispatch()
	return nil
}

// handleCloseConsumer detaches a consumer; its unacknowledged messages go to
// the subscription's other consumers.
func (c *conn) handleCloseConsumer(cmd *pb.CommandCloseConsumer) error {
	if cs, ok := c.consumers[cmd.GetConsumerId()]; ok {
		delete(c.consumers, cs.id)
		cs.t.mu.Lock()
		cs.s.removeConsumer(cs)
		cs.t.mu.Unlock()
	}
	c.sendSuccess(cmd.GetRequestId())
	return nil
}

// handleUnsubscribe deletes the consumer's subscription. It fails while other
// consumers are attached, as in Pulsar.
func (c *conn) handleUnsubscribe(cmd *pb.CommandUnsubscribe) error {
	reqID := cmd.GetRequestId()
	cs, ok := c.consumers[cmd.GetConsumerId()]
	if !ok {
		c.sendError(reqID, pb.ServerError_MetadataError, fmt.Sprintf("unknown consumer %d", cmd.GetConsumerId()))
		return nil
	}
	cs.t.mu.Lock()
	defer cs.t.mu.Unlock()
	s := cs.s
	if len(s.consumers) > 1 {
		c.sendError(reqID, pb.ServerError_ConsumerBusy,
			fmt.Sprintf("subscription %q on %q has %d consumers", s.name, cs.t.name, len(s.consumers)))
		return nil
	}
	delete(c.consumers, cs.id)
	s.removeConsumer(cs)
	delete(cs.t.subs, s.name)
	c.sendSuccess(reqID)
	return nil
}
