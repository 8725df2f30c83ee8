package pulsarlocal

import (
	"math"
	"slices"

	"google.golang.org/protobuf/proto"

	pb "github.com/pipelined/pipelined/internal/pulsarpb"
)

// handleGetLastMessageID answers the last entry's ID (entry -1 when the topic
// is empty) and the subscription's mark-delete position.
func (c *conn) handleGetLastMessageID(cmd *pb.CommandGetLastMessageId) error {
	reqID := cmd.GetRequestId()
	cs, ok := c.consumers[cmd.GetConsumerId()]
	if !ok {
		c.sendError(reqID, pb.ServerError_MetadataError, "unknown consumer")
		return nil
	}
	t := cs.t
	t.mu.Lock()
	last := int64(len(t.entries)) - 1
	batchIndex := int32(-1)
	if last >= 0 {
		if p, err := parseEntry(t.entries[last].data); err == nil {
			var md pb.MessageMetadata
			if proto.Unmarshal(p.meta, &md) == nil && md.NumMessagesInBatch != nil {
				batchIndex = md.GetNumMessagesInBatch() - 1
			}
		}
	}
	markDelete := cs.s.markDelete - 1
	t.mu.Unlock()
	c.send(&pb.BaseCommand{
		Type: pb.BaseCommand_GET_LAST_MESSAGE_ID_RESPONSE.Enum(),
		GetLastMessageIdResponse: &pb.CommandGetLastMessageIdResponse{
			RequestId: ptr(reqID),
			LastMessageId: &pb.MessageIdData{
				LedgerId:   ptr(uint64(ledgerID)),
				EntryId:    ptr(uint64(last)),
				Partition:  ptr(int32(t.partition)),
				BatchIndex: ptr(batchIndex),
			},
			ConsumerMarkDeletePosition: &pb.MessageIdData{
				LedgerId: ptr(uint64(ledgerID)),
				EntryId:  ptr(uint64(markDelete)),
			},
		},
	})
	return nil
}

// handleSeek resets the subscription to a message ID or publish time: every
// entry before it counts as acknowledged, everything from it on is not.
// Like Pulsar, the subscription's consumers are then disconnected
// (CLOSE_CONSUMER) and the clients subscribe again.
func (c *conn) handleSeek(cmd *pb.CommandSeek) error {
	reqID := cmd.GetRequestId()
	cs, ok := c.consumers[cmd.GetConsumerId()]
	if !ok {
		c.sendError(reqID, pb.ServerError_MetadataError, "unknown consumer")
		return nil
	}
	t := cs.t
	t.mu.Lock()
	s := cs.s
	end := int64(len(t.entries))
	var pos int64
	switch {
	case cmd.MessageId != nil:
		id := cmd.MessageId
		switch {
		case int64(id.GetLedgerId()) == math.MaxInt64:
			pos = end
		case int64(id.GetLedgerId()) < 0 || int64(id.GetEntryId()) < 0:
			pos = 0
		default:
			pos = min(int64(id.GetEntryId()), end)
		}
	case cmd.MessagePublishTime != nil:
		pos = t.entryAtTime(cmd.GetMessagePublishTime())
	default:
		t.mu.Unlock()
		c.sendError(reqID, pb.ServerError_MetadataError, "seek without message ID or publish time")
		return nil
	}
	s.markDelete = pos
	clear(s.acked)
	clear(s.partial)
	s.rewind()
	for _, other := range slices.Clone(s.consumers) {
		s.removeConsumer(other)
		other.c.send(&pb.BaseCommand{
			Type:          pb.BaseCommand_CLOSE_CONSUMER.Enum(),
			CloseConsumer: &pb.CommandCloseConsumer{ConsumerId: ptr(other.id), RequestId: ptr(uint64(0))},
		})
	}
	t.mu.Unlock()
	c.sendSuccess(reqID)
	return nil
}

// entryAtTime returns the first entry published at or after ms (Unix
// milliseconds), or the end. t.mu must be held.
func (t *topic) entryAtTime(ms uint64) int64 {
	var md pb.MessageMetadata
	for i, e := range t.entries {
		p, err := parseEntry(e.data)
		if err != nil {
			continue
		}
		md.Reset()
		if proto.Unmarshal(p.meta, &md) == nil && md.GetPublishTime() >= ms {
			return int64(i)
		}
	}
	return int64(len(t.entries))
}
