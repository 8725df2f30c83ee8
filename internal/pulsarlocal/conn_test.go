package pulsarlocal

import (
	"bufio"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	pb "github.com/pipelined/pipelined/internal/pulsarpb"
)

func connectFrame() []byte {
	return pb.AppendFrame(nil, &pb.BaseCommand{
		Type:    pb.BaseCommand_CONNECT.Enum(),
		Connect: &pb.CommandConnect{ClientVersion: ptr("test"), ProtocolVersion: ptr(int32(20))},
	})
}

// expectClosed reads from nc until the broker closes it.
func expectClosed(t *testing.T, nc net.Conn) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after 5s")
	}
}

// TestGarbageClosesConnection sends malformed frames on raw connections and
// checks that only those connections are closed while a real client goes on.
func TestGarbageClosesConnection(t *testing.T) {
	b := NewTest(t, Config{})
	client := newClient(t, b)
	const topic = "garbage"
	cons, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	for _, tc := range []struct {
		name  string
		bytes []byte
	}{
		{"http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"bad-protobuf", []byte{0, 0, 0, 8, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff}},
		{"command-size-past-frame", []byte{0, 0, 0, 5, 0, 0, 0, 9, 1}},
		{"not-connect-first", pb.AppendFrame(nil, &pb.BaseCommand{Type: pb.BaseCommand_PING.Enum(), Ping: &pb.CommandPing{}})},
		{"garbage-after-connect", append(connectFrame(), 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", b.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if _, err := nc.Write(tc.bytes); err != nil {
				t.Fatal(err)
			}
			expectClosed(t, nc)
		})
	}
	produceSeq(t, client, topic, 10, false)
	for i := 0; i < 10; i++ {
		if got := seqOf(t, receive(t, cons, 10*time.Second)); got != i {
			t.Fatalf("message %d, want %d", got, i)
		}
	}
}

// TestUnsupportedCommand checks that a request this broker does not
// implement gets an ERROR for its request ID.
func TestUnsupportedCommand(t *testing.T) {
	b := NewTest(t, Config{})
	nc, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	out := connectFrame()
	out = pb.AppendFrame(out, &pb.BaseCommand{
		Type:   pb.BaseCommand_NEW_TXN.Enum(),
		NewTxn: &pb.CommandNewTxn{RequestId: ptr(uint64(42))},
	})
	if _, err := nc.Write(out); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(nc)
	cmd, _, _, err := readFrame(r, nil)
	if err != nil || cmd.GetType() != pb.BaseCommand_CONNECTED {
		t.Fatalf("first response %v, %v; want CONNECTED", cmd.GetType(), err)
	}
	cmd, _, _, err = readFrame(r, nil)
	if err != nil || cmd.GetType() != pb.BaseCommand_ERROR || cmd.GetError().GetRequestId() != 42 {
		t.Fatalf("second response %v, %v; want ERROR for request 42", cmd, err)
	}
}

// TestFaults checks the fault hooks: refused connections are closed, and a
// client carries on after DropConnections.
func TestFaults(t *testing.T) {
	b := NewTest(t, Config{})
	b.RefuseConnections(true)
	nc, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	nc.Write(connectFrame())
	expectClosed(t, nc)
	nc.Close()
	b.RefuseConnections(false)

	client := newClient(t, b)
	const topic = "faults"
	cons, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", AckWithResponse: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	for round := 0; round < 2; round++ {
		produceSeq(t, client, topic, 5, false)
		for i := 0; i < 5; i++ {
			m := receive(t, cons, 30*time.Second)
			if got := seqOf(t, m); got != i {
				t.Fatalf("round %d: message %d, want %d", round, got, i)
			}
			if err := cons.Ack(m); err != nil {
				t.Fatalf("round %d: ack: %v", round, err)
			}
		}
		b.DropConnections()
		b.SetResponseDelay(10 * time.Millisecond)
	}
	st, err := b.Subscription(topic, -1, "s")
	if err != nil {
		t.Fatal(err)
	}
	if st.Backlog != 0 || st.MarkDelete != 10 {
		t.Errorf("subscription %+v, want mark-delete 10 and no backlog", st)
	}
}
