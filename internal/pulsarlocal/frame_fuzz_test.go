package pulsarlocal

import (
	"bytes"
	"testing"

	pb "github.com/pipelined/pipelined/internal/pulsarpb"
)

// FuzzReadFrame feeds arbitrary bytes to the frame decoder, seeded with
// frames from the encoders; it must return a command or an error, never panic.
func FuzzReadFrame(f *testing.F) {
	bb := &batchBuilder{hash: make([]int, 1<<16)}
	entry := bb.build([]Message{{Key: "k", Payload: []byte("hello hello hello hello")}}, 1)
	f.Add(connectFrame())
	f.Add(pb.AppendFrame(nil, &pb.BaseCommand{Type: pb.BaseCommand_PING.Enum(), Ping: &pb.CommandPing{}}))
	f.Add(appendMessageFrame(nil, 7, 42, 3, entry))
	f.Add(appendPayloadFrame(nil, &pb.BaseCommand{
		Type: pb.BaseCommand_SEND.Enum(),
		Send: &pb.CommandSend{ProducerId: ptr(uint64(1)), SequenceId: ptr(uint64(2))},
	}, entry))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		var buf []byte
		for i := 0; i < 16; i++ {
			cmd, payload, nbuf, err := readFrame(r, buf)
			buf = nbuf
			if err != nil {
				return
			}
			if cmd.Type == nil {
				t.Fatal("command without type accepted")
			}
			if payload != nil {
				parseEntry(payload) // must not panic
			}
		}
	})
}

// TestMessageFrameMatchesProto checks the hand-encoded MESSAGE frame against
// the generic protobuf encoding.
func TestMessageFrameMatchesProto(t *testing.T) {
	entry := []byte{0x0e, 0x01, 1, 2, 3, 4}
	for _, redelivery := range []uint32{0, 5} {
		got := appendMessageFrame(nil, 300, 1<<40, redelivery, entry)
		cmd := &pb.BaseCommand{
			Type: pb.BaseCommand_MESSAGE.Enum(),
			Message: &pb.CommandMessage{
				ConsumerId: ptr(uint64(300)),
				MessageId:  &pb.MessageIdData{LedgerId: ptr(uint64(ledgerID)), EntryId: ptr(uint64(1 << 40))},
			},
		}
		if redelivery > 0 {
			cmd.Message.RedeliveryCount = ptr(redelivery)
		}
		want := appendPayloadFrame(nil, cmd, entry)
		if !bytes.Equal(got, want) {
			t.Errorf("redelivery %d:\n got %x\nwant %x", redelivery, got, want)
		}
	}
}
