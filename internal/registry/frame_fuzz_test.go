package registry

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/pipelined/pipelined/internal/pulsarpb"
)

// seedFrames are encoded frames of the commands the client reads and writes.
func seedFrames() [][]byte {
	cmds := []*pb.BaseCommand{
		{Type: pb.BaseCommand_CONNECTED.Enum(), Connected: &pb.CommandConnected{
			ServerVersion: proto.String("Pulsar Server3.3.0"), ProtocolVersion: proto.Int32(20), MaxMessageSize: proto.Int32(5 << 20),
		}},
		{Type: pb.BaseCommand_PING.Enum(), Ping: &pb.CommandPing{}},
		lookupAnswer(&pb.BaseCommand{LookupTopic: &pb.CommandLookupTopic{RequestId: proto.Uint64(1)}},
			pb.CommandLookupTopicResponse_Redirect, "pulsar://broker-1:6650", true),
		{Type: pb.BaseCommand_GET_SCHEMA_RESPONSE.Enum(), GetSchemaResponse: &pb.CommandGetSchemaResponse{
			RequestId: proto.Uint64(2), Schema: avroSchema, SchemaVersion: []byte{0, 0, 0, 0, 0, 0, 0, 3},
		}},
		{Type: pb.BaseCommand_ERROR.Enum(), Error: &pb.CommandError{
			RequestId: proto.Uint64(2), Error: pb.ServerError_ServiceNotReady.Enum(), Message: proto.String("unloading"),
		}},
	}
	var frames [][]byte
	for _, c := range cmds {
		frames = append(frames, pb.AppendFrame(nil, c))
	}
	return frames
}

func FuzzReadFrame(f *testing.F) {
	for _, fr := range seedFrames() {
		f.Add(fr)
		f.Add(fr[:len(fr)-1])                         // truncated
		f.Add(append(fr, 0xde, 0xad))                 // followed by the next frame's start
		f.Add(append(bytes.Clone(fr[:4]), fr[8:]...)) // no command size
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 1 << 16
		r := bytes.NewReader(data)
		cmd, _, err := readFrame(r, nil, limit)
		if err != nil {
			return
		}
		total := binary.BigEndian.Uint32(data)
		if consumed := len(data) - r.Len(); consumed != 4+int(total) || total > limit {
			t.Fatalf("consumed %d bytes of a frame of %d (limit %d)", consumed, total, limit)
		}
		again, _, err := readFrame(bytes.NewReader(pb.AppendFrame(nil, cmd)), nil, limit+16)
		if err != nil {
			t.Fatalf("re-encoded %v: %v", cmd, err)
		}
		if !proto.Equal(cmd, again) {
			t.Fatalf("round trip: %v, then %v", cmd, again)
		}
	})
}

func TestReadFrame(t *testing.T) {
	frames := seedFrames()
	var stream []byte
	for _, fr := range frames {
		stream = append(stream, fr...)
	}
	r := bytes.NewReader(stream)
	var buf []byte
	for i := range frames {
		cmd, b, err := readFrame(r, buf, defaultMaxFrame)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		buf = b
		want := &pb.BaseCommand{}
		if err := proto.Unmarshal(frames[i][8:], want); err != nil || !proto.Equal(cmd, want) {
			t.Fatalf("frame %d: %v, want %v (%v)", i, cmd, want, err)
		}
	}
	if _, _, err := readFrame(r, buf, defaultMaxFrame); err != io.EOF {
		t.Fatalf("after the last frame: %v, want EOF", err)
	}

	ping := frames[1]
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, io.EOF},
		{"short size", []byte{0, 0}, io.ErrUnexpectedEOF},
		{"size below 4", []byte{0, 0, 0, 3, 0, 0, 0}, errFrame},
		{"size over limit", binary.BigEndian.AppendUint32(nil, defaultMaxFrame+1), errFrame},
		{"truncated body", ping[:len(ping)-1], io.ErrUnexpectedEOF},
		{"command size over frame", []byte{0, 0, 0, 4, 0, 0, 0, 5}, errFrame},
		{"no type", []byte{0, 0, 0, 4, 0, 0, 0, 0}, errFrame},
		{"garbage command", []byte{0, 0, 0, 6, 0, 0, 0, 2, 0xff, 0xff}, errFrame},
	} {
		_, _, err := readFrame(bytes.NewReader(tc.data), nil, defaultMaxFrame)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}
