// Licensed to the Apache Software Foundation (ASF) under one
// or more contributor license agreements.  See the NOTICE file
// distributed with this work for additional information
// regarding copyright ownership.  The ASF licenses this file
// to you under the Apache License, Version 2.0 (the
// "License"); you may not use this file except in compliance
// with the License.  You may obtain a copy of the License at
//
//   http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing,
// software distributed under the License is distributed on an
// "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY
// KIND, either express or implied.  See the License for the
// specific language governing permissions and limitations
// under the License.

// pipelined patch (not in upstream v0.19.0): tests of message_command.go.

package internal

import (
	"testing"

	pb "github.com/apache/pulsar-client-go/pulsar/internal/pulsar_proto"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// brokerMessage is a MESSAGE command as a Pulsar broker writes it for an entry: consumer id,
// and the entry's ledger, entry and partition.
func brokerMessage() *pb.BaseCommand {
	return &pb.BaseCommand{
		Type: pb.BaseCommand_MESSAGE.Enum(),
		Message: &pb.CommandMessage{
			ConsumerId: proto.Uint64(7),
			MessageId:  &pb.MessageIdData{LedgerId: proto.Uint64(1 << 40), EntryId: proto.Uint64(123456), Partition: proto.Int32(-1)},
		},
	}
}

// messageCommandCases are BaseCommands: MESSAGE commands the hand decoder reads (fast, true) and
// ones it leaves to proto.Unmarshal (other commands, fields it does not know, fields protobuf
// would merge, packed repeated fields, missing required fields, broken input).
func messageCommandCases() map[string]struct {
	data []byte
	fast bool
} {
	m := func(x proto.Message) []byte {
		b, err := proto.MarshalOptions{AllowPartial: true}.Marshal(x) // some lack a required field
		if err != nil {
			panic(err)
		}
		return b
	}
	every := brokerMessage()
	every.Message.RedeliveryCount = proto.Uint32(3)
	every.Message.AckSet = []int64{-1, 1 << 62, 0}
	every.Message.ConsumerEpoch = proto.Uint64(1 << 35)
	every.Message.MessageId.BatchIndex = proto.Int32(-5)
	every.Message.MessageId.BatchSize = proto.Int32(100)
	every.Message.MessageId.AckSet = []int64{5, -7}
	minimal := brokerMessage()
	minimal.Message.MessageId.Partition = nil
	chunked := brokerMessage()
	chunked.Message.MessageId.FirstChunkMessageId = &pb.MessageIdData{LedgerId: proto.Uint64(1), EntryId: proto.Uint64(2)}
	noLedger := brokerMessage()
	noLedger.Message.MessageId.LedgerId = nil
	noEntry := brokerMessage()
	noEntry.Message.MessageId.EntryId = nil
	noConsumer := brokerMessage()
	noConsumer.Message.ConsumerId = nil
	noID := brokerMessage()
	noID.Message.MessageId = nil
	noType := brokerMessage()
	noType.Type = nil
	broker := m(brokerMessage())
	// The same command with the message's bytes extended by one field: the lengths are fixed up
	// by building the CommandMessage and the BaseCommand around it again.
	withMessageField := func(num protowire.Number, typ protowire.Type, v []byte) []byte {
		msg := append(m(brokerMessage().Message), protowire.AppendTag(nil, num, typ)...)
		msg = append(msg, v...)
		cmd := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), uint64(pb.BaseCommand_MESSAGE))
		return protowire.AppendBytes(protowire.AppendTag(cmd, 9, protowire.BytesType), msg)
	}
	withIDField := func(num protowire.Number, typ protowire.Type, v []byte) []byte {
		id := append(m(brokerMessage().Message.MessageId), protowire.AppendTag(nil, num, typ)...)
		id = append(id, v...)
		msg := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 7)
		msg = protowire.AppendBytes(protowire.AppendTag(msg, 2, protowire.BytesType), id)
		cmd := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), uint64(pb.BaseCommand_MESSAGE))
		return protowire.AppendBytes(protowire.AppendTag(cmd, 9, protowire.BytesType), msg)
	}
	varint := func(v uint64) []byte { return protowire.AppendVarint(nil, v) }
	bytes := func(b []byte) []byte { return protowire.AppendBytes(nil, b) }
	type c = struct {
		data []byte
		fast bool
	}
	return map[string]c{
		"broker":                  {broker, true},
		"every field":             {m(every), true},
		"no partition":            {m(minimal), true},
		"message before type":     {append(broker[2:len(broker):len(broker)], broker[:2]...), true},
		"type twice":              {append(append([]byte(nil), broker...), broker[:2]...), true},
		"scalar twice":            {withMessageField(1, protowire.VarintType, varint(9)), true},
		"id scalar twice":         {withIDField(2, protowire.VarintType, varint(99)), true},
		"batch index past 32b":    {withIDField(4, protowire.VarintType, varint(1<<40|3)), true},
		"redelivery past 32b":     {withMessageField(3, protowire.VarintType, varint(1<<33|2)), true},
		"message twice":           {append(append([]byte(nil), broker...), broker[2:]...), false},
		"message id twice":        {withMessageField(2, protowire.BytesType, bytes(m(&pb.MessageIdData{BatchIndex: proto.Int32(4)}))), false},
		"packed ack set":          {withMessageField(4, protowire.BytesType, bytes(varint(5))), false},
		"packed id ack set":       {withIDField(5, protowire.BytesType, bytes(varint(5))), false},
		"chunked":                 {m(chunked), false},
		"unknown message field":   {withMessageField(99, protowire.VarintType, varint(1)), false},
		"unknown id field":        {withIDField(99, protowire.VarintType, varint(1)), false},
		"fixed64 field":           {withMessageField(5, protowire.Fixed64Type, make([]byte, 8)), false},
		"wrong wire type":         {withMessageField(1, protowire.BytesType, bytes([]byte("x"))), false},
		"no ledger":               {m(noLedger), false},
		"no entry":                {m(noEntry), false},
		"no consumer":             {m(noConsumer), false},
		"no message id":           {m(noID), false},
		"no type":                 {m(noType), false},
		"no message":              {m(&pb.BaseCommand{Type: pb.BaseCommand_MESSAGE.Enum()}), false},
		"ping":                    {m(&pb.BaseCommand{Type: pb.BaseCommand_PING.Enum(), Ping: &pb.CommandPing{}}), false},
		"flow":                    {m(&pb.BaseCommand{Type: pb.BaseCommand_FLOW.Enum(), Flow: &pb.CommandFlow{ConsumerId: proto.Uint64(1), MessagePermits: proto.Uint32(500)}}), false},
		"message and other field": {append(append([]byte(nil), broker...), m(&pb.BaseCommand{Ping: &pb.CommandPing{}})...), false},
		"unknown type":            {append(append([]byte(nil), broker...), 0x08, 0x7f), false},
		"truncated":               {broker[:len(broker)-1], false},
		"bad varint":              {[]byte{0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, false},
		"length past end":         {[]byte{0x08, 0x09, 0x4a, 0x20, 0x08}, false},
		"field zero":              {[]byte{0x00, 0x01}, false},
		"empty":                   {nil, false},
	}
}

// checkMessageCommand fails unless a command the hand decoder reads is what proto.Unmarshal
// reads, and proto.Unmarshal accepts it.
func checkMessageCommand(t *testing.T, data []byte) *pb.CommandMessage {
	t.Helper()
	got := unmarshalMessageCommand(data)
	if got == nil {
		return nil
	}
	var want pb.BaseCommand
	if err := proto.Unmarshal(data, &want); err != nil {
		t.Fatalf("data %x: decoded %v, proto.Unmarshal fails: %v", data, got, err)
	}
	if cmd := (&pb.BaseCommand{Type: pb.BaseCommand_MESSAGE.Enum(), Message: got}); !proto.Equal(cmd, &want) {
		t.Fatalf("data %x: decoded\n%v\nproto.Unmarshal\n%v", data, cmd, &want)
	}
	return got
}

func TestMessageCommandMatchesProto(t *testing.T) {
	for name, tc := range messageCommandCases() {
		t.Run(name, func(t *testing.T) {
			got := checkMessageCommand(t, tc.data)
			if (got != nil) != tc.fast {
				t.Fatalf("decoded by hand: %v, want %v (got %v)", got != nil, tc.fast, got)
			}
		})
	}
}

// The reader takes what the hand decoder does not: the command and errors are protobuf's.
func TestDeserializeCmdFallsBack(t *testing.T) {
	r := &connectionReader{}
	flow, _ := proto.Marshal(&pb.BaseCommand{Type: pb.BaseCommand_FLOW.Enum(), Flow: &pb.CommandFlow{ConsumerId: proto.Uint64(1), MessagePermits: proto.Uint32(500)}})
	cmd, err := r.deserializeCmd(flow)
	if err != nil || cmd.GetType() != pb.BaseCommand_FLOW || cmd.GetFlow().GetMessagePermits() != 500 {
		t.Fatalf("a FLOW command: %v, %v", cmd, err)
	}
	broker, _ := proto.Marshal(brokerMessage())
	cmd, err = r.deserializeCmd(broker)
	if err != nil || cmd.GetMessage().GetMessageId().GetEntryId() != 123456 || cmd.GetMessage().GetMessageId().GetBatchIndex() != -1 {
		t.Fatalf("a MESSAGE command: %v, %v", cmd, err)
	}
}

// The reader reuses the BaseCommand of MESSAGE commands, not what it points at: a consumer may
// keep a message id after the next command is read.
func TestMessageCommandNotReused(t *testing.T) {
	r := &connectionReader{}
	a, _ := proto.Marshal(brokerMessage())
	next := brokerMessage()
	next.Message.MessageId.EntryId = proto.Uint64(9)
	b, _ := proto.Marshal(next)
	first, err := r.deserializeCmd(a)
	if err != nil {
		t.Fatal(err)
	}
	kept := first.GetMessage()
	second, err := r.deserializeCmd(b)
	if err != nil {
		t.Fatal(err)
	}
	if kept.GetMessageId().GetEntryId() != 123456 || second.GetMessage().GetMessageId().GetEntryId() != 9 || second.GetType() != pb.BaseCommand_MESSAGE {
		t.Fatalf("kept entry %d, next %v", kept.GetMessageId().GetEntryId(), second)
	}
}

func TestMessageCommandAllocs(t *testing.T) {
	data, _ := proto.Marshal(brokerMessage())
	r := &connectionReader{}
	if n := testing.AllocsPerRun(100, func() { _, _ = r.deserializeCmd(data) }); n != 1 {
		t.Errorf("a broker's MESSAGE command: %v allocations, want 1", n)
	}
}

// FuzzMessageCommand checks the hand-written decoder against proto.Unmarshal on any input.
func FuzzMessageCommand(f *testing.F) {
	for _, tc := range messageCommandCases() {
		f.Add(tc.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkMessageCommand(t, data)
	})
}

func BenchmarkMessageCommand(b *testing.B) {
	data, _ := proto.Marshal(brokerMessage())
	b.Run("patched", func(b *testing.B) {
		r := &connectionReader{}
		for b.Loop() {
			if _, err := r.deserializeCmd(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proto.Unmarshal", func(b *testing.B) {
		for b.Loop() {
			var cmd pb.BaseCommand
			if err := proto.Unmarshal(data, &cmd); err != nil {
				b.Fatal(err)
			}
		}
	})
}
