package pulsarlocal

import (
	pb "github.com/pipelined/pipelined/internal/pulsarpb"
)

// handleAck applies individual or cumulative acknowledgements, with batch
// index ack sets when the client sends them.
func (c *conn) handleAck(cmd *pb.CommandAck) error {
	cs, ok := c.consumers[cmd.GetConsumerId()]
	if ok {
		cs.t.mu.Lock()
		s := cs.s
		for _, id := range cmd.GetMessageId() {
			entry := int64(id.GetEntryId())
			if cmd.GetAckType() == pb.CommandAck_Cumulative {
				s.ackCumulative(entry, id.GetAckSet())
			} else {
				s.ackIndividual(entry, id.GetAckSet())
			}
		}
		cs.t.mu.Unlock()
	}
	if cmd.RequestId != nil {
		c.send(&pb.BaseCommand{
			Type:        pb.BaseCommand_ACK_RESPONSE.Enum(),
			AckResponse: &pb.CommandAckResponse{ConsumerId: ptr(cmd.GetConsumerId()), RequestId: ptr(cmd.GetRequestId())},
		})
	}
	return nil
}

// handleRedeliver sends unacknowledged messages again. Like Pulsar, an
// Exclusive or Failover subscription rewinds to its acknowledged position to
// keep the order; a Shared one resends the listed (or all of the consumer's)
// messages.
func (c *conn) handleRedeliver(cmd *pb.CommandRedeliverUnacknowledgedMessages) error {
	cs, ok := c.consumers[cmd.GetConsumerId()]
	if !ok {
		return nil
	}
	cs.t.mu.Lock()
	defer cs.t.mu.Unlock()
	if cs.closed {
		return nil
	}
	s := cs.s
	if s.shared() {
		ids := make([]int64, 0, len(cmd.GetMessageIds()))
		for _, id := range cmd.GetMessageIds() {
			ids = append(ids, int64(id.GetEntryId()))
		}
		s.redeliverShared(cs, ids)
	} else if s.active == cs {
		s.rewind()
	}
	s.dispatch()
	return nil
}
