package registry

import (
	"bufio"
	"crypto/tls"
	"net"
	"slices"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/pipelined/pipelined/internal/pulsarpb"
)

// fake is a scripted Pulsar broker for the exchanges pulsarlocal does not make: handle answers
// every command (see answer for the usual answers), and every command received is recorded.
type fake struct {
	t      testing.TB
	ln     net.Listener
	url    string
	handle func(c *fakeConn, cmd *pb.BaseCommand)
	// schema is what answer sends for GET_SCHEMA.
	schema *pb.Schema

	mu    sync.Mutex
	seen  []*pb.BaseCommand
	conns []net.Conn
	wg    sync.WaitGroup
}

// fakeConn is one connection to a fake; its commands are handled in order by one goroutine.
type fakeConn struct {
	f  *fake
	nc net.Conn
	// proxyTo is the proxy_to_broker_url of this connection's CONNECT.
	proxyTo string
}

// newFake starts a fake on 127.0.0.1, with TLS when cfg is given, stopped in t.Cleanup. It
// holds schema (none when nil); handle nil gives the usual answers.
func newFake(t testing.TB, cfg *tls.Config, schema *pb.Schema, handle func(c *fakeConn, cmd *pb.BaseCommand)) *fake {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	f := &fake{t: t, ln: ln, url: "pulsar://" + ln.Addr().String(), schema: schema, handle: handle}
	if cfg != nil {
		f.ln = tls.NewListener(ln, cfg)
		f.url = "pulsar+ssl://" + ln.Addr().String()
	}
	if f.handle == nil {
		f.handle = func(c *fakeConn, cmd *pb.BaseCommand) { c.answer(cmd) }
	}
	f.wg.Go(f.accept)
	t.Cleanup(f.close)
	return f
}

func (f *fake) accept() {
	for {
		nc, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns = append(f.conns, nc)
		f.mu.Unlock()
		f.wg.Go(func() { f.serve(&fakeConn{f: f, nc: nc}) })
	}
}

func (f *fake) serve(c *fakeConn) {
	r := bufio.NewReader(c.nc)
	var buf []byte
	for {
		cmd, b, err := readFrame(r, buf, defaultMaxFrame)
		buf = b
		if err != nil {
			return // the client closed, or the fake is closing
		}
		if cmd.GetType() == pb.BaseCommand_CONNECT {
			c.proxyTo = cmd.GetConnect().GetProxyToBrokerUrl()
		}
		f.mu.Lock()
		f.seen = append(f.seen, cmd)
		f.mu.Unlock()
		f.handle(c, cmd)
	}
}

func (f *fake) close() {
	f.ln.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// received returns the commands of type typ received so far.
func (f *fake) received(typ pb.BaseCommand_Type) []*pb.BaseCommand {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(f.seen), func(c *pb.BaseCommand) bool { return c.GetType() != typ })
}

func (c *fakeConn) send(cmd *pb.BaseCommand) {
	if _, err := c.nc.Write(pb.AppendFrame(nil, cmd)); err != nil {
		c.f.t.Logf("fake %s: send %v: %v", c.f.url, cmd.GetType(), err)
	}
}

// answer gives the usual answers: CONNECTED, a lookup pointing at the fake itself, the
// fake's schema (or TopicNotFound), PONG.
func (c *fakeConn) answer(cmd *pb.BaseCommand) {
	switch cmd.GetType() {
	case pb.BaseCommand_CONNECT:
		c.send(&pb.BaseCommand{Type: pb.BaseCommand_CONNECTED.Enum(), Connected: &pb.CommandConnected{
			ServerVersion: proto.String("fake"), ProtocolVersion: proto.Int32(protocolVersion),
		}})
	case pb.BaseCommand_LOOKUP:
		c.send(lookupAnswer(cmd, pb.CommandLookupTopicResponse_Connect, c.f.url, false))
	case pb.BaseCommand_GET_SCHEMA:
		r := &pb.CommandGetSchemaResponse{RequestId: proto.Uint64(cmd.GetGetSchema().GetRequestId())}
		if c.f.schema != nil {
			r.Schema, r.SchemaVersion = c.f.schema, []byte{0, 0, 0, 0, 0, 0, 0, 0}
		} else {
			r.ErrorCode, r.ErrorMessage = pb.ServerError_TopicNotFound.Enum(), proto.String("Topic not found or no-schema")
		}
		c.send(&pb.BaseCommand{Type: pb.BaseCommand_GET_SCHEMA_RESPONSE.Enum(), GetSchemaResponse: r})
	case pb.BaseCommand_PING:
		c.send(&pb.BaseCommand{Type: pb.BaseCommand_PONG.Enum(), Pong: &pb.CommandPong{}})
	}
}

// lookupAnswer answers a LOOKUP with url as both the plain and the TLS broker URL.
func lookupAnswer(cmd *pb.BaseCommand, kind pb.CommandLookupTopicResponse_LookupType, url string, proxy bool) *pb.BaseCommand {
	return &pb.BaseCommand{Type: pb.BaseCommand_LOOKUP_RESPONSE.Enum(), LookupTopicResponse: &pb.CommandLookupTopicResponse{
		RequestId:              proto.Uint64(cmd.GetLookupTopic().GetRequestId()),
		Response:               kind.Enum(),
		BrokerServiceUrl:       proto.String(url),
		BrokerServiceUrlTls:    proto.String(url),
		Authoritative:          proto.Bool(true),
		ProxyThroughServiceUrl: proto.Bool(proxy),
	}}
}
