package registry

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/pipelined/pipelined/internal/pulsarpb"
)

// protocolVersion is the one pulsar-client-go v0.19.0 announces.
const protocolVersion = int32(pb.ProtocolVersion_v20)

// clientVersion follows pulsar-client-go's "Pulsar-Go-<version>-<description>", so brokers
// list this client next to the consumers of the same process.
var clientVersion = func() string {
	const module = "github.com/apache/pulsar-client-go"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == module {
				return "Pulsar-Go-" + d.Version + "-pipelined-registry"
			}
		}
	}
	return "Pulsar-Go-version-unknown-pipelined-registry"
}()

// endpoint is where a connection goes: logical is the broker host:port the topic lives on,
// physical the host:port dialled; they differ when a proxy forwards to the broker.
type endpoint struct {
	logical, physical string
	tls               bool
}

func (e endpoint) String() string {
	scheme := "pulsar://"
	if e.tls {
		scheme = "pulsar+ssl://"
	}
	if e.logical == e.physical {
		return scheme + e.logical
	}
	return scheme + e.logical + " via " + e.physical
}

// conn is one handshaken connection used by a single goroutine: requests are sent one at a
// time and answered in order. Its deadline is the operation's.
type conn struct {
	ep       endpoint
	nc       net.Conn
	r        *bufio.Reader
	buf      []byte // frame read buffer
	out      []byte // frame write buffer
	maxFrame int
	nextID   uint64
	auth     auth
	stop     func() bool // unregisters the context's AfterFunc
}

// auth is what CONNECT and AUTH_RESPONSE carry.
type auth struct {
	method string
	data   []byte
}

// dial connects to ep and performs the CONNECT handshake. Every read and write is bounded by
// ctx: its deadline becomes the connection's, and cancelling it unblocks them.
func dial(ctx context.Context, o *Options, ep endpoint) (*conn, error) {
	nd := &net.Dialer{}
	var (
		nc  net.Conn
		err error
	)
	if ep.tls {
		cfg := &tls.Config{}
		if o.TLSConfig != nil {
			cfg = o.TLSConfig.Clone()
		}
		if cfg.ServerName == "" {
			host, _, _ := net.SplitHostPort(ep.physical)
			cfg.ServerName = host
		}
		nc, err = (&tls.Dialer{NetDialer: nd, Config: cfg}).DialContext(ctx, "tcp", ep.physical)
	} else {
		nc, err = nd.DialContext(ctx, "tcp", ep.physical)
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", ep, ctxErr(ctx, err))
	}
	c := &conn{ep: ep, nc: nc, r: bufio.NewReader(nc), maxFrame: defaultMaxFrame, auth: authOf(o)}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	c.stop = context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	if err := c.handshake(ctx); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// authOf picks the authentication pulsar-client-go would: a token when given, else "tls" when
// the TLS configuration presents a client certificate, else none.
func authOf(o *Options) auth {
	switch {
	case o.Token != "":
		return auth{method: "token", data: []byte(o.Token)}
	case o.TLSConfig != nil && (len(o.TLSConfig.Certificates) > 0 || o.TLSConfig.GetClientCertificate != nil):
		return auth{method: "tls"}
	}
	return auth{}
}

func (c *conn) close() {
	c.stop()
	_ = c.nc.Close()
}

// handshake sends CONNECT and waits for CONNECTED, answering the broker's PINGs and
// authentication challenges meanwhile.
func (c *conn) handshake(ctx context.Context) error {
	connect := &pb.CommandConnect{
		ProtocolVersion: proto.Int32(protocolVersion),
		ClientVersion:   proto.String(clientVersion),
		FeatureFlags:    &pb.FeatureFlags{SupportsAuthRefresh: proto.Bool(true)},
	}
	if c.auth.method != "" {
		connect.AuthMethodName = proto.String(c.auth.method)
		connect.AuthData = c.auth.data
	}
	if c.ep.logical != c.ep.physical {
		connect.ProxyToBrokerUrl = proto.String(c.ep.logical)
	}
	if err := c.write(ctx, &pb.BaseCommand{Type: pb.BaseCommand_CONNECT.Enum(), Connect: connect}); err != nil {
		return err
	}
	for {
		cmd, err := c.read(ctx, "CONNECTED")
		if err != nil {
			return err
		}
		switch cmd.GetType() {
		case pb.BaseCommand_CONNECTED:
			if n := int(cmd.GetConnected().GetMaxMessageSize()); n > 0 {
				c.maxFrame = min(max(n+frameOverhead, defaultMaxFrame), maxFrameLimit)
			}
			return nil
		case pb.BaseCommand_ERROR:
			e := cmd.GetError()
			return fmt.Errorf("connect to %s: %v: %s", c.ep, e.GetError(), e.GetMessage())
		default:
			if err := c.control(ctx, cmd); err != nil {
				return err
			}
		}
	}
}

// control answers the commands a broker may send at any time. Anything else not asked for
// is ignored: the deadline bounds the wait for the expected answer.
func (c *conn) control(ctx context.Context, cmd *pb.BaseCommand) error {
	switch cmd.GetType() {
	case pb.BaseCommand_PING:
		return c.write(ctx, &pb.BaseCommand{Type: pb.BaseCommand_PONG.Enum(), Pong: &pb.CommandPong{}})
	case pb.BaseCommand_AUTH_CHALLENGE:
		data := c.auth.data
		if data == nil {
			data = []byte{} // brokers expect auth_data to be present
		}
		return c.write(ctx, &pb.BaseCommand{
			Type: pb.BaseCommand_AUTH_RESPONSE.Enum(),
			AuthResponse: &pb.CommandAuthResponse{
				ProtocolVersion: proto.Int32(protocolVersion),
				ClientVersion:   proto.String(clientVersion),
				Response:        &pb.AuthData{AuthMethodName: proto.String(c.auth.method), AuthData: data},
			},
		})
	}
	return nil
}

// call sends cmd, whose request id is id, and returns the answer of type want with the same
// request id. An ERROR for the request is an error.
func (c *conn) call(ctx context.Context, cmd *pb.BaseCommand, id uint64, want pb.BaseCommand_Type) (*pb.BaseCommand, error) {
	if err := c.write(ctx, cmd); err != nil {
		return nil, err
	}
	for {
		resp, err := c.read(ctx, want.String())
		if err != nil {
			return nil, err
		}
		switch t := resp.GetType(); {
		case t == want && requestID(resp) == id:
			return resp, nil
		case t == pb.BaseCommand_ERROR && resp.GetError().GetRequestId() == id:
			e := resp.GetError()
			return nil, fmt.Errorf("%v on %s: %v: %s", cmd.GetType(), c.ep, e.GetError(), e.GetMessage())
		}
		if err := c.control(ctx, resp); err != nil {
			return nil, err
		}
	}
}

// requestID returns the request id of the responses call waits for.
func requestID(cmd *pb.BaseCommand) uint64 {
	switch cmd.GetType() {
	case pb.BaseCommand_LOOKUP_RESPONSE:
		return cmd.GetLookupTopicResponse().GetRequestId()
	case pb.BaseCommand_GET_SCHEMA_RESPONSE:
		return cmd.GetGetSchemaResponse().GetRequestId()
	}
	return ^uint64(0)
}

func (c *conn) newID() uint64 {
	c.nextID++
	return c.nextID
}

// lookup asks which broker serves topic.
func (c *conn) lookup(ctx context.Context, topic string, authoritative bool) (*pb.CommandLookupTopicResponse, error) {
	id := c.newID()
	resp, err := c.call(ctx, &pb.BaseCommand{
		Type: pb.BaseCommand_LOOKUP.Enum(),
		LookupTopic: &pb.CommandLookupTopic{
			RequestId:     proto.Uint64(id),
			Topic:         proto.String(topic),
			Authoritative: proto.Bool(authoritative),
		},
	}, id, pb.BaseCommand_LOOKUP_RESPONSE)
	if err != nil {
		return nil, err
	}
	return resp.GetLookupTopicResponse(), nil
}

// getSchema asks for the latest schema of topic.
func (c *conn) getSchema(ctx context.Context, topic string) (*pb.Schema, error) {
	id := c.newID()
	resp, err := c.call(ctx, &pb.BaseCommand{
		Type: pb.BaseCommand_GET_SCHEMA.Enum(),
		GetSchema: &pb.CommandGetSchema{
			RequestId: proto.Uint64(id),
			Topic:     proto.String(topic),
		},
	}, id, pb.BaseCommand_GET_SCHEMA_RESPONSE)
	if err != nil {
		return nil, err
	}
	r := resp.GetGetSchemaResponse()
	switch {
	case r.ErrorCode != nil && r.GetErrorCode() == pb.ServerError_TopicNotFound:
		// Pulsar answers TopicNotFound "Topic not found or no-schema" for both.
		return nil, fmt.Errorf("GET_SCHEMA on %s: %w: %v: %s", c.ep, ErrNoSchema, r.GetErrorCode(), r.GetErrorMessage())
	case r.ErrorCode != nil:
		return nil, fmt.Errorf("GET_SCHEMA on %s: %v: %s", c.ep, r.GetErrorCode(), r.GetErrorMessage())
	case r.GetSchema() == nil:
		return nil, fmt.Errorf("GET_SCHEMA on %s: %w: answer without schema", c.ep, ErrNoSchema)
	}
	return r.GetSchema(), nil
}

func (c *conn) write(ctx context.Context, cmd *pb.BaseCommand) error {
	c.out = pb.AppendFrame(c.out[:0], cmd)
	if _, err := c.nc.Write(c.out); err != nil {
		return fmt.Errorf("send %v to %s: %w", cmd.GetType(), c.ep, ctxErr(ctx, err))
	}
	return nil
}

// read reads the next command; want names what is awaited, for the error.
func (c *conn) read(ctx context.Context, want string) (*pb.BaseCommand, error) {
	cmd, buf, err := readFrame(c.r, c.buf, c.maxFrame)
	c.buf = buf
	if err != nil {
		return nil, fmt.Errorf("waiting for %s from %s: %w", want, c.ep, ctxErr(ctx, err))
	}
	return cmd, nil
}

// ctxErr returns the context's error when it ended, since a deadline or cancellation shows on
// the socket only as a timeout.
func ctxErr(ctx context.Context, err error) error {
	if e := ctx.Err(); e != nil {
		return e
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return context.DeadlineExceeded
	}
	return err
}
