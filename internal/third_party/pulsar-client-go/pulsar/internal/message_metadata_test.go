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

// pipelined patch (not in upstream v0.19.0): tests of message_metadata.go.

package internal

import (
	"testing"

	pb "github.com/apache/pulsar-client-go/pulsar/internal/pulsar_proto"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// messageMetadataCases are MessageMetadata as producers write them, and some that only
// proto.Unmarshal decodes (properties, an unknown field or compression, a missing required
// field, broken input).
func messageMetadataCases() map[string][]byte {
	batch := &pb.MessageMetadata{ // pulsar-client-go's producer, batching with LZ4
		ProducerName:       proto.String("standalone-0-42"),
		SequenceId:         proto.Uint64(1 << 33),
		PublishTime:        proto.Uint64(1767225650123),
		Compression:        pb.CompressionType_LZ4.Enum(),
		UncompressedSize:   proto.Uint32(4100),
		NumMessagesInBatch: proto.Int32(100),
		SchemaVersion:      []byte{0, 0, 0, 0, 0, 0, 0, 3},
	}
	full := proto.Clone(batch).(*pb.MessageMetadata)
	full.ReplicatedFrom = proto.String("us-east")
	full.PartitionKey = proto.String("device-00042")
	full.ReplicateTo = []string{"us-west", "", "eu-central"}
	full.EventTime = proto.Uint64(1767225650000)
	full.PartitionKeyB64Encoded = proto.Bool(true)
	full.OrderingKey = []byte("ok")
	withProps := proto.Clone(batch).(*pb.MessageMetadata)
	withProps.Properties = []*pb.KeyValue{{Key: proto.String("k"), Value: proto.String("v")}}
	withChunks := proto.Clone(batch).(*pb.MessageMetadata)
	withChunks.Uuid, withChunks.ChunkId, withChunks.NumChunksFromMsg = proto.String("u"), proto.Int32(1), proto.Int32(3)
	m := func(x proto.Message) []byte {
		b, err := proto.MarshalOptions{AllowPartial: true}.Marshal(x) // some lack a required field
		if err != nil {
			panic(err)
		}
		return b
	}
	minimal := m(&pb.MessageMetadata{ProducerName: proto.String(""), SequenceId: proto.Uint64(0), PublishTime: proto.Uint64(0)})
	field := func(num protowire.Number, typ protowire.Type, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(append([]byte(nil), minimal...), num, typ), v)
	}
	return map[string][]byte{
		"batch":                m(batch),
		"every field":          m(full),
		"minimal":              minimal,
		"empty bytes":          m(&pb.MessageMetadata{ProducerName: proto.String("p"), SequenceId: proto.Uint64(1), PublishTime: proto.Uint64(2), SchemaVersion: []byte{}, OrderingKey: []byte{}}),
		"negative batch size":  m(&pb.MessageMetadata{ProducerName: proto.String("p"), SequenceId: proto.Uint64(1), PublishTime: proto.Uint64(2), NumMessagesInBatch: proto.Int32(-1)}),
		"repeated field":       append(m(batch), m(&pb.MessageMetadata{ProducerName: proto.String("q"), SequenceId: proto.Uint64(2), PublishTime: proto.Uint64(3), SchemaVersion: []byte{9}})...),
		"properties":           m(withProps),
		"chunks":               m(withChunks),
		"unknown field":        field(99, protowire.VarintType, 5),
		"unknown compression":  field(8, protowire.VarintType, 77),
		"compression past 32b": field(8, protowire.VarintType, 1<<32+1),
		"size past 32 bits":    field(9, protowire.VarintType, 1<<32+7),
		"wrong wire type":      protowire.AppendBytes(protowire.AppendTag(append([]byte(nil), minimal...), 2, protowire.BytesType), []byte("x")),
		"no producer name":     m(&pb.MessageMetadata{SequenceId: proto.Uint64(1), PublishTime: proto.Uint64(2)}),
		"no publish time":      m(&pb.MessageMetadata{ProducerName: proto.String("p"), SequenceId: proto.Uint64(1)}),
		"truncated":            m(full)[:9],
		"bad varint":           {0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"length past end":      {0x0a, 0x20, 'a'},
		"field zero":           {0x00, 0x01},
		"empty":                {},
	}
}

// checkMessageMetadata fails unless decoding data gives what proto.Unmarshal gives: the same
// message, or an error for both.
func checkMessageMetadata(t *testing.T, data []byte) {
	t.Helper()
	var want pb.MessageMetadata
	wantErr := proto.Unmarshal(data, &want)
	got, err := unmarshalMessageMetadata(data)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("data %x: error %v, proto.Unmarshal's %v", data, err, wantErr)
	}
	if err != nil {
		return
	}
	if !proto.Equal(got, &want) {
		t.Fatalf("data %x: decoded\n%v\nproto.Unmarshal\n%v", data, got, &want)
	}
}

func TestMessageMetadataMatchesProto(t *testing.T) {
	for name, data := range messageMetadataCases() {
		t.Run(name, func(t *testing.T) { checkMessageMetadata(t, data) })
	}
}

// A batch's messages keep its metadata's bytes, so they are copies, as protobuf makes them,
// not views of the frame they were read from.
func TestMessageMetadataCopiesBytes(t *testing.T) {
	data, _ := proto.Marshal(&pb.MessageMetadata{ProducerName: proto.String("p"), SequenceId: proto.Uint64(1), PublishTime: proto.Uint64(2),
		SchemaVersion: []byte{1, 2}, OrderingKey: []byte{3}, ReplicateTo: []string{"c"}})
	m, err := unmarshalMessageMetadata(data)
	if err != nil {
		t.Fatal(err)
	}
	clear(data)
	if string(m.SchemaVersion) != "\x01\x02" || string(m.OrderingKey) != "\x03" || m.GetProducerName() != "p" || m.ReplicateTo[0] != "c" {
		t.Fatalf("after the frame was overwritten: %v", m)
	}
}

func TestMessageMetadataAllocs(t *testing.T) {
	data, _ := proto.Marshal(&pb.MessageMetadata{ProducerName: proto.String("pulsarlocal"), SequenceId: proto.Uint64(0), PublishTime: proto.Uint64(1767225650123),
		Compression: pb.CompressionType_LZ4.Enum(), UncompressedSize: proto.Uint32(4100), NumMessagesInBatch: proto.Int32(100)})
	if n := testing.AllocsPerRun(100, func() { _, _ = unmarshalMessageMetadata(data) }); n != 2 {
		t.Errorf("a batch's metadata: %v allocations, want 2 (the message with its scalars, the producer name)", n)
	}
}

// FuzzMessageMetadata checks the hand-written decoder against proto.Unmarshal on any input.
func FuzzMessageMetadata(f *testing.F) {
	for _, data := range messageMetadataCases() {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkMessageMetadata(t, data)
	})
}

func BenchmarkMessageMetadata(b *testing.B) {
	data, _ := proto.Marshal(&pb.MessageMetadata{ProducerName: proto.String("standalone-0-42"), SequenceId: proto.Uint64(77), PublishTime: proto.Uint64(1767225650123),
		Compression: pb.CompressionType_LZ4.Enum(), UncompressedSize: proto.Uint32(4100), NumMessagesInBatch: proto.Int32(100), SchemaVersion: []byte{0, 0, 0, 0, 0, 0, 0, 3}})
	b.Run("patched", func(b *testing.B) {
		for b.Loop() {
			if _, err := unmarshalMessageMetadata(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proto.Unmarshal", func(b *testing.B) {
		for b.Loop() {
			if _, err := slowMessageMetadata(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
