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
	"encoding/binary"

	pb "github.com/apache/pulsar-client-go/pulsar/internal/pulsar_proto"
	"google.golang.org/protobuf/proto"
)

// singleMetadata is the storage a MessageReader decodes each batch entry's
// SingleMessageMetadata into: the message and the scalars its optional fields
// point at, reused from one entry to the next so that decoding allocates only
// the partition key's string.
type singleMetadata struct {
	meta         pb.SingleMessageMetadata
	partitionKey string
	payloadSize  int32
	eventTime    uint64
	sequenceID   uint64
	flags        [4]bool // compacted_out, partition_key_b64_encoded, null_value, null_partition_key
}

// unmarshal decodes data, a SingleMessageMetadata, into s and returns &s.meta,
// valid until the next call. It reads the fields a producer writes (2 to 10) by
// hand, as proto.Unmarshal would; for anything else (properties, a field it does
// not know, a wrong wire type, a missing payload_size, truncated input) it leaves
// the work to proto.Unmarshal, so the result and the errors are protobuf's.
func (s *singleMetadata) unmarshal(data []byte) (*pb.SingleMessageMetadata, error) {
	m := &s.meta
	m.Reset()
	var havePayloadSize bool
	for i := 0; i < len(data); {
		tag, n := binary.Uvarint(data[i:])
		if n <= 0 {
			return s.slow(data)
		}
		i += n
		field, wire := tag>>3, tag&7
		if wire == 2 { // length-delimited: partition_key (2) or ordering_key (7)
			l, n := binary.Uvarint(data[i:])
			if n <= 0 || l > uint64(len(data)-i-n) {
				return s.slow(data)
			}
			i += n
			b := data[i : i+int(l)]
			i += int(l)
			switch field {
			case 2:
				if s.partitionKey != string(b) { // the same key as the entry before needs no new string
					s.partitionKey = string(b)
				}
				m.PartitionKey = &s.partitionKey
			case 7:
				m.OrderingKey = b
			default:
				return s.slow(data)
			}
			continue
		}
		if wire != 0 {
			return s.slow(data)
		}
		v, n := binary.Uvarint(data[i:])
		if n <= 0 {
			return s.slow(data)
		}
		i += n
		switch field {
		case 3:
			s.payloadSize, m.PayloadSize, havePayloadSize = int32(v), &s.payloadSize, true
		case 5:
			s.eventTime, m.EventTime = v, &s.eventTime
		case 8:
			s.sequenceID, m.SequenceId = v, &s.sequenceID
		case 4:
			s.flags[0], m.CompactedOut = v != 0, &s.flags[0]
		case 6:
			s.flags[1], m.PartitionKeyB64Encoded = v != 0, &s.flags[1]
		case 9:
			s.flags[2], m.NullValue = v != 0, &s.flags[2]
		case 10:
			s.flags[3], m.NullPartitionKey = v != 0, &s.flags[3]
		default:
			return s.slow(data)
		}
	}
	if !havePayloadSize {
		return s.slow(data) // proto.Unmarshal names the missing required field
	}
	return m, nil
}

// slow is proto.Unmarshal, which resets s.meta first.
func (s *singleMetadata) slow(data []byte) (*pb.SingleMessageMetadata, error) {
	m := &s.meta
	if err := proto.Unmarshal(data, m); err != nil {
		return nil, err
	}
	return m, nil
}
