package pulsarlocal

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	pb "github.com/pipelined/pipelined/internal/pulsarpb"
)

// producer is one producer on a connection.
type producer struct {
	id   uint64
	name string
	t    *topic
}

// handleProducer registers a producer on a (partition) topic, registering the
// schema it brings.
func (c *conn) handleProducer(cmd *pb.CommandProducer) error {
	reqID := cmd.GetRequestId()
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
	var version []byte
	if s := cmd.GetSchema(); s != nil {
		version = c.b.putSchema(full, s)
	}
	name := cmd.GetProducerName()
	if name == "" {
		c.b.mu.Lock()
		c.b.nextName++
		name = fmt.Sprintf("pulsarlocal-%d", c.b.nextName)
		c.b.mu.Unlock()
	}
	c.producers[cmd.GetProducerId()] = &producer{id: cmd.GetProducerId(), name: name, t: t}
	c.send(&pb.BaseCommand{
		Type: pb.BaseCommand_PRODUCER_SUCCESS.Enum(),
		ProducerSuccess: &pb.CommandProducerSuccess{
			RequestId:      ptr(reqID),
			ProducerName:   ptr(name),
			LastSequenceId: ptr(int64(-1)),
			SchemaVersion:  version,
			TopicEpoch:     ptr(uint64(0)),
			ProducerReady:  ptr(true),
		},
	})
	return nil
}

// handleSend stores one entry (a single message or a batch) exactly as sent
// and dispatches it.
func (c *conn) handleSend(cmd *pb.CommandSend, payload []byte) error {
	p, ok := c.producers[cmd.GetProducerId()]
	if !ok {
		return fmt.Errorf("send for unknown producer %d", cmd.GetProducerId())
	}
	if _, err := parseEntry(payload); err != nil {
		c.send(&pb.BaseCommand{
			Type: pb.BaseCommand_SEND_ERROR.Enum(),
			SendError: &pb.CommandSendError{
				ProducerId: ptr(p.id),
				SequenceId: ptr(cmd.GetSequenceId()),
				Error:      pb.ServerError_ChecksumError.Enum(),
				Message:    ptr(err.Error()),
			},
		})
		return nil
	}
	n := cmd.GetNumMessages()
	if n <= 0 {
		n = 1
	}
	t := p.t
	t.mu.Lock()
	id := t.appendLocked(payload, n)
	t.dispatchAllLocked()
	t.mu.Unlock()
	receipt := &pb.CommandSendReceipt{
		ProducerId: ptr(p.id),
		SequenceId: ptr(cmd.GetSequenceId()),
		MessageId:  &pb.MessageIdData{LedgerId: ptr(uint64(ledgerID)), EntryId: ptr(uint64(id))},
	}
	if cmd.HighestSequenceId != nil {
		receipt.HighestSequenceId = proto.Uint64(cmd.GetHighestSequenceId())
	}
	c.send(&pb.BaseCommand{Type: pb.BaseCommand_SEND_RECEIPT.Enum(), SendReceipt: receipt})
	return nil
}

// handleCloseProducer forgets a producer.
func (c *conn) handleCloseProducer(cmd *pb.CommandCloseProducer) error {
	delete(c.producers, cmd.GetProducerId())
	c.sendSuccess(cmd.GetRequestId())
	return nil
}
