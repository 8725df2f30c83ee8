package pulsarlocal

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/pipelined/pipelined/internal/pulsarpb"
)

// conn is one client connection. serve (the reader goroutine) handles
// commands in order and owns producers and consumers; writeLoop writes what
// the reader and the dispatchers append to out.
type conn struct {
	b  *Broker
	nc net.Conn

	outMu sync.Mutex
	out   []byte // frames waiting for writeLoop
	spare []byte // writeLoop's previous buffer, reused
	wake  chan struct{}

	closeOnce sync.Once
	done      chan struct{}

	producers map[uint64]*producer
	consumers map[uint64]*consumer
}

func newConn(b *Broker, nc net.Conn) *conn {
	return &conn{
		b:         b,
		nc:        nc,
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		producers: make(map[uint64]*producer),
		consumers: make(map[uint64]*consumer),
	}
}

// close closes the connection; the reader then cleans up. Safe to call from
// any goroutine, more than once.
func (c *conn) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		c.nc.Close()
	})
}

// lockOut locks the outgoing buffer and returns it for appending; hand the
// result back to unlockOut.
func (c *conn) lockOut() []byte {
	c.outMu.Lock()
	return c.out
}

func (c *conn) unlockOut(out []byte) {
	grew := len(out) != len(c.out)
	c.out = out
	c.outMu.Unlock()
	if grew {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// send queues one command frame.
func (c *conn) send(cmd *pb.BaseCommand) {
	c.unlockOut(pb.AppendFrame(c.lockOut(), cmd))
}

func (c *conn) writeLoop() {
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		c.outMu.Lock()
		buf := c.out
		if len(buf) == 0 {
			c.outMu.Unlock()
			continue
		}
		// buf is in flight until written: neither out nor spare may alias it.
		c.out, c.spare = c.spare[:0], nil
		c.outMu.Unlock()
		if _, err := c.nc.Write(buf); err != nil {
			c.close()
			return
		}
		if cap(buf) > 16<<20 {
			buf = nil // do not keep a burst's buffer forever
		}
		c.outMu.Lock()
		c.spare = buf[:0]
		c.outMu.Unlock()
	}
}

// serve reads and handles commands until the connection fails or is closed.
func (c *conn) serve() {
	defer c.cleanup()
	r := bufio.NewReaderSize(c.nc, 64<<10)
	var buf []byte
	first := true
	for {
		cmd, payload, nbuf, err := readFrame(r, buf)
		buf = nbuf
		if err != nil {
			select {
			case <-c.done:
			default:
				if !errors.Is(err, io.EOF) {
					c.b.logf("pulsarlocal: %s: %v", c.nc.RemoteAddr(), err)
				}
			}
			return
		}
		t := cmd.GetType()
		if first {
			if t != pb.BaseCommand_CONNECT {
				c.b.logf("pulsarlocal: %s: first command %v, want CONNECT", c.nc.RemoteAddr(), t)
				return
			}
			first = false
		}
		switch t {
		case pb.BaseCommand_PING, pb.BaseCommand_PONG, pb.BaseCommand_FLOW, pb.BaseCommand_ACK:
		default:
			if d := c.b.responseDelay(); d > 0 {
				select {
				case <-time.After(d):
				case <-c.done:
					return
				}
			}
		}
		if err := c.handle(cmd, payload); err != nil {
			c.b.logf("pulsarlocal: %s: %v: %v", c.nc.RemoteAddr(), t, err)
			return
		}
	}
}

// handle runs one command. An error closes the connection.
func (c *conn) handle(cmd *pb.BaseCommand, payload []byte) error {
	switch cmd.GetType() {
	case pb.BaseCommand_CONNECT:
		return c.handleConnect(cmd.Connect)
	case pb.BaseCommand_PING:
		c.send(&pb.BaseCommand{Type: pb.BaseCommand_PONG.Enum(), Pong: &pb.CommandPong{}})
		return nil
	case pb.BaseCommand_PONG:
		return nil
	case pb.BaseCommand_PARTITIONED_METADATA:
		return c.handlePartitionedMetadata(cmd.PartitionMetadata)
	case pb.BaseCommand_LOOKUP:
		return c.handleLookup(cmd.LookupTopic)
	case pb.BaseCommand_GET_TOPICS_OF_NAMESPACE:
		return c.handleTopicsOfNamespace(cmd.GetTopicsOfNamespace)
	case pb.BaseCommand_PRODUCER:
		return c.handleProducer(cmd.Producer)
	case pb.BaseCommand_SEND:
		return c.handleSend(cmd.Send, payload)
	case pb.BaseCommand_CLOSE_PRODUCER:
		return c.handleCloseProducer(cmd.CloseProducer)
	case pb.BaseCommand_SUBSCRIBE:
		return c.handleSubscribe(cmd.Subscribe)
	case pb.BaseCommand_FLOW:
		return c.handleFlow(cmd.Flow)
	case pb.BaseCommand_ACK:
		return c.handleAck(cmd.Ack)
	case pb.BaseCommand_REDELIVER_UNACKNOWLEDGED_MESSAGES:
		return c.handleRedeliver(cmd.RedeliverUnacknowledgedMessages)
	case pb.BaseCommand_CLOSE_CONSUMER:
		return c.handleCloseConsumer(cmd.CloseConsumer)
	case pb.BaseCommand_UNSUBSCRIBE:
		return c.handleUnsubscribe(cmd.Unsubscribe)
	case pb.BaseCommand_GET_LAST_MESSAGE_ID:
		return c.handleGetLastMessageID(cmd.GetLastMessageId)
	case pb.BaseCommand_SEEK:
		return c.handleSeek(cmd.Seek)
	case pb.BaseCommand_GET_SCHEMA:
		return c.handleGetSchema(cmd.GetSchema)
	case pb.BaseCommand_GET_OR_CREATE_SCHEMA:
		return c.handleGetOrCreateSchema(cmd.GetOrCreateSchema)
	}
	return c.unsupported(cmd)
}

// unsupported answers a command this broker does not implement with an ERROR
// for its request ID, or closes the connection when it has none.
func (c *conn) unsupported(cmd *pb.BaseCommand) error {
	reqID, ok := requestID(cmd)
	if !ok {
		return fmt.Errorf("unsupported command %v without request_id", cmd.GetType())
	}
	c.sendError(reqID, pb.ServerError_NotAllowedError, fmt.Sprintf("pulsarlocal: command %v is not supported", cmd.GetType()))
	return nil
}

// requestID finds the request_id of the command set in cmd.
func requestID(cmd *pb.BaseCommand) (uint64, bool) {
	var id uint64
	var found bool
	cmd.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind {
			return true
		}
		m := v.Message()
		if f := m.Descriptor().Fields().ByName("request_id"); f != nil && m.Has(f) {
			id, found = m.Get(f).Uint(), true
			return false
		}
		return true
	})
	return id, found
}

func (c *conn) sendError(reqID uint64, code pb.ServerError, msg string) {
	c.send(&pb.BaseCommand{
		Type:  pb.BaseCommand_ERROR.Enum(),
		Error: &pb.CommandError{RequestId: ptr(reqID), Error: code.Enum(), Message: ptr(msg)},
	})
}

func (c *conn) sendSuccess(reqID uint64) {
	c.send(&pb.BaseCommand{Type: pb.BaseCommand_SUCCESS.Enum(), Success: &pb.CommandSuccess{RequestId: ptr(reqID)}})
}

// cleanup runs when the reader stops: it detaches producers and consumers and
// closes the connection.
func (c *conn) cleanup() {
	c.close()
	for _, cs := range c.consumers {
		cs.t.mu.Lock()
		cs.s.removeConsumer(cs)
		cs.t.mu.Unlock()
	}
	clear(c.consumers)
	clear(c.producers)
	c.b.mu.Lock()
	delete(c.b.conns, c)
	c.b.mu.Unlock()
}
