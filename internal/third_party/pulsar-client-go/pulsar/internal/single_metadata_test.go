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

// pipelined patch (not in upstream v0.19.0): tests of single_metadata.go.

package internal

import (
	"fmt"
	"testing"

	pb "github.com/apache/pulsar-client-go/pulsar/internal/pulsar_proto"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// singleMetadataCases are SingleMessageMetadata as producers write them, and some that
// only proto.Unmarshal decodes (properties, an unknown field, no payload_size).
func singleMetadataCases() map[string][]byte {
	full := &pb.SingleMessageMetadata{
		PartitionKey:           proto.String("device-00042"),
		PayloadSize:            proto.Int32(41),
		CompactedOut:           proto.Bool(true),
		EventTime:              proto.Uint64(1767225650123),
		PartitionKeyB64Encoded: proto.Bool(false),
		OrderingKey:            []byte("ok"),
		SequenceId:             proto.Uint64(1<<40 + 7),
		NullValue:              proto.Bool(true),
		NullPartitionKey:       proto.Bool(false),
	}
	withProps := proto.Clone(full).(*pb.SingleMessageMetadata)
	withProps.Properties = []*pb.KeyValue{{Key: proto.String("k"), Value: proto.String("v")}}
	m := func(x proto.Message) []byte {
		b, err := proto.MarshalOptions{AllowPartial: true}.Marshal(x) // "no payload_size" lacks a required field
		if err != nil {
			panic(err)
		}
		return b
	}
	minimal := m(&pb.SingleMessageMetadata{PayloadSize: proto.Int32(0)})
	return map[string][]byte{
		"producer":         m(&pb.SingleMessageMetadata{PartitionKey: proto.String("device-1"), PayloadSize: proto.Int32(41), EventTime: proto.Uint64(1767225650000), SequenceId: proto.Uint64(9)}),
		"every field":      m(full),
		"minimal":          minimal,
		"empty key":        m(&pb.SingleMessageMetadata{PartitionKey: proto.String(""), PayloadSize: proto.Int32(3), OrderingKey: []byte{}}),
		"negative size":    m(&pb.SingleMessageMetadata{PayloadSize: proto.Int32(-5)}),
		"repeated field":   append(m(&pb.SingleMessageMetadata{PayloadSize: proto.Int32(1), PartitionKey: proto.String("a")}), m(&pb.SingleMessageMetadata{PayloadSize: proto.Int32(2), PartitionKey: proto.String("b")})...),
		"properties":       m(withProps),
		"unknown field":    protowire.AppendVarint(protowire.AppendTag(append([]byte(nil), minimal...), 99, protowire.VarintType), 5),
		"wrong wire type":  protowire.AppendBytes(protowire.AppendTag(append([]byte(nil), minimal...), 5, protowire.BytesType), []byte("x")),
		"no payload_size":  m(&pb.SingleMessageMetadata{PartitionKey: proto.String("device-1")}),
		"truncated":        m(full)[:7],
		"bad varint":       {0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"length past end":  {0x12, 0x20, 'a'},
		"field zero":       {0x00, 0x01},
		"empty":            {},
		"huge size varint": {0x18, 0xff, 0xff, 0xff, 0xff, 0x0f},
	}
}

// checkSingleMetadata fails unless decoding data with s gives what proto.Unmarshal gives: the
// same message, or an error for both.
func checkSingleMetadata(t *testing.T, s *singleMetadata, data []byte) {
	t.Helper()
	var want pb.SingleMessageMetadata
	wantErr := proto.Unmarshal(data, &want)
	got, err := s.unmarshal(data)
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

func TestSingleMetadataMatchesProto(t *testing.T) {
	var s singleMetadata // one, reused across cases, as a MessageReader does
	for name, data := range singleMetadataCases() {
		t.Run(name, func(t *testing.T) { checkSingleMetadata(t, &s, data) })
	}
}

func TestSingleMetadataReuse(t *testing.T) {
	// A field set by one entry must not show in the next, which lacks it.
	var s singleMetadata
	first, _ := proto.Marshal(&pb.SingleMessageMetadata{PartitionKey: proto.String("a"), PayloadSize: proto.Int32(1), EventTime: proto.Uint64(5), OrderingKey: []byte("o")})
	second, _ := proto.Marshal(&pb.SingleMessageMetadata{PayloadSize: proto.Int32(2)})
	m, err := s.unmarshal(first)
	if err != nil || m.GetPartitionKey() != "a" {
		t.Fatalf("first: %v, %v", m, err)
	}
	key := m.GetPartitionKey()
	m, err = s.unmarshal(second)
	if err != nil {
		t.Fatal(err)
	}
	if m.PartitionKey != nil || m.EventTime != nil || m.OrderingKey != nil || m.GetPayloadSize() != 2 {
		t.Fatalf("second entry shows the first's fields: %v", m)
	}
	if key != "a" {
		t.Fatalf("a key taken from the first entry changed to %q", key)
	}
}

func TestSingleMetadataAllocs(t *testing.T) {
	var s singleMetadata
	keys := [2][]byte{}
	for i := range keys {
		keys[i], _ = proto.Marshal(&pb.SingleMessageMetadata{PartitionKey: proto.String(fmt.Sprintf("device-%05d", i)), PayloadSize: proto.Int32(41), EventTime: proto.Uint64(1767225650000), SequenceId: proto.Uint64(uint64(i))})
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = s.unmarshal(keys[0]) }); n != 0 {
		t.Errorf("the same key again: %v allocations, want 0", n)
	}
	i := 0
	if n := testing.AllocsPerRun(100, func() { i++; _, _ = s.unmarshal(keys[i%2]) }); n != 1 {
		t.Errorf("a new key: %v allocations, want 1 (the key's string)", n)
	}
}

// FuzzSingleMetadata checks the hand-written decoder against proto.Unmarshal on any input.
func FuzzSingleMetadata(f *testing.F) {
	for _, data := range singleMetadataCases() {
		f.Add(data)
	}
	var s singleMetadata
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSingleMetadata(t, &s, data)
	})
}

func BenchmarkSingleMetadata(b *testing.B) {
	data, _ := proto.Marshal(&pb.SingleMessageMetadata{PartitionKey: proto.String("device-00042"), PayloadSize: proto.Int32(41), EventTime: proto.Uint64(1767225650000), SequenceId: proto.Uint64(9)})
	b.Run("patched", func(b *testing.B) {
		var s singleMetadata
		for b.Loop() {
			s.partitionKey = "" // a new key each time, as in a batch of different devices
			if _, err := s.unmarshal(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proto.Unmarshal", func(b *testing.B) {
		for b.Loop() {
			var m pb.SingleMessageMetadata
			if err := proto.Unmarshal(data, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
