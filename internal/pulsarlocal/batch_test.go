package pulsarlocal

import (
	"encoding/binary"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/pipelined/pipelined/internal/pulsarpb"
)

// TestAppendSingleMessage checks the hand-encoded SingleMessageMetadata
// against the generated decoder.
func TestAppendSingleMessage(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Message
	}{
		{"payload only", Message{Payload: []byte("x")}},
		{"empty payload", Message{}},
		{"all", Message{Key: "device-1", Payload: make([]byte, 300), EventTimeMs: 1_700_000_000_123,
			Properties: map[string]string{"a": "1", "bb": ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := appendSingleMessage(nil, &tc.m)
			size := binary.BigEndian.Uint32(b)
			var smm pb.SingleMessageMetadata
			if err := proto.Unmarshal(b[4:4+size], &smm); err != nil {
				t.Fatal(err)
			}
			payload := b[4+size:]
			if int(smm.GetPayloadSize()) != len(tc.m.Payload) || len(payload) != len(tc.m.Payload) ||
				smm.GetPartitionKey() != tc.m.Key || int64(smm.GetEventTime()) != tc.m.EventTimeMs ||
				len(smm.GetProperties()) != len(tc.m.Properties) {
				t.Fatalf("decoded %v with %d payload bytes from %+v", &smm, len(payload), tc.m)
			}
			for _, kv := range smm.GetProperties() {
				if v, ok := tc.m.Properties[kv.GetKey()]; !ok || v != kv.GetValue() {
					t.Errorf("property %q=%q not in %v", kv.GetKey(), kv.GetValue(), tc.m.Properties)
				}
			}
		})
	}
}
