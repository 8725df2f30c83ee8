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

// pipelined patch (not in upstream v0.19.0): this file is new. See ../../PATCHES.md.

package internal

import (
	pb "github.com/apache/pulsar-client-go/pulsar/internal/pulsar_proto"
	"google.golang.org/protobuf/encoding/protowire"
)

// messageCommand is a MESSAGE command's CommandMessage, its MessageIdData and the scalars their
// optional fields point at, in one allocation: proto.Unmarshal makes eight objects (the
// BaseCommand, of some 600 bytes, among them) of a frame that carries one entry. Not reused: a
// consumer may keep the message id (to acknowledge a corrupt entry) after the frame.
type messageCommand struct {
	msg   pb.CommandMessage
	id    pb.MessageIdData
	redel uint32
	part  int32
	batch int32
	size  int32

	consumerID, epoch, ledgerID, entryID uint64
}

// unmarshalMessageCommand decodes data, a BaseCommand, if it is a MESSAGE command with only the
// fields brokers write: the consumer id, the message id (ledger, entry, partition, batch index
// and size, acknowledged bits), the redelivery count, acknowledged bits and the consumer epoch.
// It returns the command's CommandMessage. For any other command or field, a field given twice
// where protobuf would merge, a packed repeated field, a missing required field or broken input
// it returns nil, and the caller leaves the work to proto.Unmarshal, so the result and the
// errors are protobuf's.
func unmarshalMessageCommand(data []byte) *pb.CommandMessage {
	var msg []byte
	typed := false
	for i := 0; i < len(data); {
		field, wire, v, b, n := protoField(data[i:])
		if n <= 0 {
			return nil
		}
		i += n
		switch {
		case field == 1 && wire == protowire.VarintType:
			if v != uint64(pb.BaseCommand_MESSAGE) {
				return nil
			}
			typed = true
		case field == 9 && wire == protowire.BytesType && msg == nil:
			msg = b
		default:
			return nil
		}
	}
	if !typed || msg == nil {
		return nil
	}
	s := &messageCommand{}
	m := &s.msg
	var id []byte
	for i := 0; i < len(msg); {
		field, wire, v, b, n := protoField(msg[i:])
		if n <= 0 {
			return nil
		}
		i += n
		switch {
		case wire == protowire.BytesType && field == 2 && id == nil:
			id = b
		case wire != protowire.VarintType:
			return nil
		case field == 1:
			s.consumerID, m.ConsumerId = v, &s.consumerID
		case field == 3:
			s.redel, m.RedeliveryCount = uint32(v), &s.redel
		case field == 4:
			m.AckSet = append(m.AckSet, int64(v))
		case field == 5:
			s.epoch, m.ConsumerEpoch = v, &s.epoch
		default:
			return nil
		}
	}
	if m.ConsumerId == nil || id == nil {
		return nil
	}
	d := &s.id
	m.MessageId = d
	for i := 0; i < len(id); {
		field, wire, v, _, n := protoField(id[i:])
		if n <= 0 || wire != protowire.VarintType {
			return nil
		}
		i += n
		switch field {
		case 1:
			s.ledgerID, d.LedgerId = v, &s.ledgerID
		case 2:
			s.entryID, d.EntryId = v, &s.entryID
		case 3:
			s.part, d.Partition = int32(v), &s.part
		case 4:
			s.batch, d.BatchIndex = int32(v), &s.batch
		case 5:
			d.AckSet = append(d.AckSet, int64(v))
		case 6:
			s.size, d.BatchSize = int32(v), &s.size
		default:
			return nil
		}
	}
	if d.LedgerId == nil || d.EntryId == nil {
		return nil
	}
	return m
}

// protoField reads one field of a protobuf message at the start of data with protowire: its
// number and wire type, and its value for a varint or its bytes for a length-delimited one.
// n is the bytes read, or 0 for input it does not read: broken, truncated, or of another wire
// type.
func protoField(data []byte) (field protowire.Number, wire protowire.Type, v uint64, b []byte, n int) {
	field, wire, n = protowire.ConsumeTag(data)
	if n < 0 {
		return 0, 0, 0, nil, 0
	}
	m := -1
	switch wire {
	case protowire.VarintType:
		v, m = protowire.ConsumeVarint(data[n:])
	case protowire.BytesType:
		b, m = protowire.ConsumeBytes(data[n:])
	}
	if m < 0 {
		return 0, 0, 0, nil, 0
	}
	return field, wire, v, b, n + m
}
