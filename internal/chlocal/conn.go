package chlocal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/ClickHouse/ch-go/compress"
	"github.com/ClickHouse/ch-go/proto"
)

// Protocol revisions: the server advertises ch-go's own revision, so every
// feature ch-go implements is on; older clients must at least send settings
// as strings.
const (
	serverRevision    = proto.Version // 54460
	minClientRevision = int(proto.FeatureSettingsSerializedAsStrings)
)

// maxInsertBytes bounds the data of one INSERT.
const maxInsertBytes = 16 << 30

// backend runs the queries of connections: the engine, or a fake in tests.
type backend interface {
	// run runs query in database db with settings; see engine.run.
	run(db string, settings []proto.Setting, query []byte, format string) (*result, error)
	// use makes db the current database, or fails if it does not exist.
	use(db string) error
	// version is the engine's version and timezone.
	version() serverVersion
	// tempDir is where INSERT data is staged for the engine to read.
	tempDir() string
}

// conn is one client connection.
type conn struct {
	eng   backend
	procs *processes // of the Server
	nc    net.Conn
	r     *wire
	out   proto.Buffer
	ver   int    // negotiated protocol revision
	db    string // current database
	user  string // from the hello

	compressed bool // of the current query
	method     compress.Method
	zw         *compress.Writer
	zwMethod   compress.Method
	blocks     blockReader
	insertBuf  []byte        // an INSERT's blocks, re-encoded for the engine
	insertW    *bufio.Writer // writes them to the INSERT's file; its 1 MiB buffer is reused
}

// serveConn speaks the protocol on nc until the client leaves or breaks it.
// A nil error means the client closed the connection between queries.
func serveConn(eng backend, procs *processes, nc net.Conn) error {
	c := &conn{eng: eng, procs: procs, nc: nc, r: newWire(nc)}
	if err := c.handshake(); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	for {
		code, err := binary.ReadUvarint(c.r)
		if err != nil {
			if err == io.EOF {
				return nil // the client left between packets
			}
			return fmt.Errorf("packet: %w", err)
		}
		switch proto.ClientCode(code) {
		case proto.ClientCodePing:
			proto.ServerCodePong.Encode(&c.out)
		case proto.ClientCodeQuery:
			if err := c.query(); err != nil {
				return fmt.Errorf("query: %w", err)
			}
		case proto.ClientCodeCancel:
			// Nothing runs between queries.
		default:
			c.exception(&Exception{Code: int32(proto.ErrUnknownPacketFromClient),
				Message: fmt.Sprintf("DB::Exception: Unknown packet %d from client. (UNKNOWN_PACKET_FROM_CLIENT)", code)})
			_ = c.flush()
			return fmt.Errorf("unexpected packet %d", code)
		}
		if err := c.flush(); err != nil {
			return err
		}
	}
}

func (c *conn) handshake() error {
	code, err := c.r.uvarint()
	if err != nil {
		return fmt.Errorf("packet: %w", err)
	}
	if proto.ClientCode(code) != proto.ClientCodeHello {
		return fmt.Errorf("packet %d instead of hello", code)
	}
	hello, err := c.r.decodeHello()
	if err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	if hello.ProtocolVersion < minClientRevision {
		c.exception(&Exception{Code: int32(proto.ErrUnexpectedPacketFromClient), Message: fmt.Sprintf(
			"DB::Exception: Client protocol revision %d is older than %d. (UNEXPECTED_PACKET_FROM_CLIENT)",
			hello.ProtocolVersion, minClientRevision)})
		_ = c.flush()
		return fmt.Errorf("client revision %d", hello.ProtocolVersion)
	}
	c.ver = min(hello.ProtocolVersion, serverRevision)
	c.user = hello.User
	if c.user == "" {
		c.user = "default"
	}
	c.db = hello.Database
	if c.db == "" {
		c.db = "default"
	}
	if err := c.eng.use(c.db); err != nil {
		c.exception(err)
		_ = c.flush()
		return fmt.Errorf("database %q: %w", c.db, err)
	}
	v := c.eng.version()
	info := proto.ServerHello{
		Name:        "ClickHouse",
		Major:       v.major,
		Minor:       v.minor,
		Revision:    serverRevision,
		Timezone:    v.timezone,
		DisplayName: "chlocal",
		Patch:       v.patch,
	}
	info.EncodeAware(&c.out, c.ver)
	if err := c.flush(); err != nil {
		return err
	}
	if proto.FeatureAddendum.In(c.ver) {
		if _, err := c.r.str(maxFieldLen); err != nil {
			return fmt.Errorf("quota key: %w", err)
		}
	}
	return nil
}

func (c *conn) flush() error {
	if len(c.out.Buf) == 0 {
		return nil
	}
	_, err := c.nc.Write(c.out.Buf)
	c.out.Reset()
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// exception queues an Exception packet for err.
func (c *conn) exception(err error) {
	var ex *Exception
	if !errors.As(err, &ex) {
		ex = &Exception{Code: codeStdException, Message: "DB::Exception: " + err.Error()}
	}
	p := ex.proto()
	proto.ServerCodeException.Encode(&c.out)
	p.EncodeAware(&c.out, c.ver)
}

// readData reads a client Data packet after its code: the temporary table
// name, then the block, compressed if the query says so.
func (c *conn) readData() (block, error) {
	var d struct{ table string }
	if proto.FeatureTempTables.In(c.ver) {
		t, err := c.r.str(maxFieldLen)
		if err != nil {
			return block{}, fmt.Errorf("table name: %w", err)
		}
		d.table = t
	}
	c.r.compressed = c.compressed
	c.blocks.r = c.r
	b, err := c.blocks.readBlockShared(true, proto.FeatureCustomSerialization.In(c.ver))
	c.r.compressed = false
	if err != nil {
		return b, fmt.Errorf("data block of %q: %w", d.table, err)
	}
	return b, nil
}

// nextData reads the next packet, which must be Data. The block's data is
// valid until the next read.
func (c *conn) nextData() (block, error) {
	code, err := c.r.uvarint()
	if err != nil {
		return block{}, fmt.Errorf("packet: %w", err)
	}
	switch proto.ClientCode(code) {
	case proto.ClientCodeData:
		return c.readData()
	case proto.ClientCodeCancel:
		return block{}, errors.New("query canceled by the client")
	}
	return block{}, fmt.Errorf("packet %d instead of data", code)
}

// writeData queues a Data packet with b.
func (c *conn) writeData(b block) error {
	proto.ServerCodeData.Encode(&c.out)
	if proto.FeatureTempTables.In(c.ver) {
		c.out.PutString("")
	}
	flags := proto.FeatureCustomSerialization.In(c.ver)
	if !c.compressed {
		c.out.Buf = appendBlock(c.out.Buf, b, true, flags)
		return nil
	}
	body := appendBlock(nil, b, true, flags)
	if c.zw == nil {
		c.zw, c.zwMethod = compress.NewWriter(compress.LevelZero, c.method), c.method
	}
	// ClickHouse frames compressed data in blocks of max_compress_block_size.
	const frame = 1 << 20
	for len(body) > 0 {
		n := min(len(body), frame)
		if err := c.zw.Compress(body[:n]); err != nil {
			return fmt.Errorf("compress: %w", err)
		}
		c.out.Buf = append(c.out.Buf, c.zw.Data...)
		body = body[n:]
	}
	return nil
}
