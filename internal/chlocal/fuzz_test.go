package chlocal

import (
	"bytes"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/compress"
	"github.com/ClickHouse/ch-go/proto"
	"go.opentelemetry.io/otel/trace"
)

// Client packets as ch-go encodes them.

func encodeHello(b *proto.Buffer, v int) {
	proto.ClientHello{Name: "ch-go", Major: 1, Minor: 2, ProtocolVersion: v, Database: "default", User: "default"}.Encode(b)
	if proto.FeatureAddendum.In(v) {
		b.PutString("") // quota key
	}
}

func testQuery(body string, compression proto.Compression) proto.Query {
	return proto.Query{
		ID:          "3b8a1e5c-0000-4000-8000-000000000001",
		Body:        body,
		Stage:       proto.StageComplete,
		Compression: compression,
		Settings: []proto.Setting{
			{Key: "insert_deduplication_token", Value: "batch-1", Important: true},
			{Key: "custom_x", Value: "y", Custom: true},
		},
		Parameters: []proto.Parameter{{Key: "p", Value: "'1'"}},
		Info: proto.ClientInfo{
			ProtocolVersion: proto.Version, Major: 1, Minor: 2, Patch: 3,
			Interface: proto.InterfaceTCP, Query: proto.ClientQueryInitial,
			InitialUser: "u", InitialQueryID: "q", InitialAddress: "127.0.0.1:1",
			ClientName: "ch-go", QuotaKey: "k", DistributedDepth: 1,
			Span: trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5}, TraceFlags: trace.FlagsSampled,
			}),
		},
	}
}

// encodeData encodes a Data packet the way ch-go's client does.
func encodeData(t testing.TB, b *proto.Buffer, v int, compressed bool, input proto.Input) {
	proto.ClientCodeData.Encode(b)
	proto.ClientData{}.EncodeAware(b, v)
	blk := proto.Block{Columns: len(input)}
	if len(input) > 0 {
		blk.Rows = input[0].Data.Rows()
		blk.Info.BucketNum = -1
	}
	start := len(b.Buf)
	if err := blk.EncodeBlock(b, v, input); err != nil {
		t.Fatal(err)
	}
	if compressed {
		w := compress.NewWriter(compress.LevelZero, compress.LZ4)
		if err := w.Compress(b.Buf[start:]); err != nil {
			t.Fatal(err)
		}
		b.Buf = append(b.Buf[:start], w.Data...)
	}
}

func testInput() proto.Input {
	var a proto.ColUInt64
	var s proto.ColStr
	for i := range 5 {
		a.Append(uint64(i))
		s.Append(strings.Repeat("x", i))
	}
	return proto.Input{{Name: "a", Data: &a}, {Name: "s", Data: &s}}
}

// conversations are whole client sides of connections, for FuzzServe.
func conversations(t testing.TB) [][]byte {
	var out [][]byte
	for _, v := range []int{minClientRevision, int(proto.FeatureProfileEvents), proto.Version} {
		for _, compression := range []proto.Compression{proto.CompressionDisabled, proto.CompressionEnabled} {
			on := compression == proto.CompressionEnabled
			var b proto.Buffer
			encodeHello(&b, v)
			proto.ClientCodePing.Encode(&b)
			testQuery("SELECT a, s FROM t", compression).EncodeAware(&b, v)
			encodeData(t, &b, v, on, nil)
			testQuery("INSERT INTO t (a, s) VALUES", compression).EncodeAware(&b, v)
			encodeData(t, &b, v, on, nil)
			encodeData(t, &b, v, on, testInput())
			encodeData(t, &b, v, on, nil)
			testQuery("SELECT query_id FROM system.processes AS p WHERE p.elapsed >= 0", compression).EncodeAware(&b, v)
			encodeData(t, &b, v, on, nil)
			testQuery("CREATE TABLE fail (a UInt8) ENGINE = Memory", compression).EncodeAware(&b, v)
			encodeData(t, &b, v, on, nil)
			out = append(out, b.Buf)
		}
	}
	return out
}

// fakeBackend answers queries without an engine: SELECTs return two rows
// of (a UInt64, s String), DESCRIBE describes those columns, statements
// with "fail" in them fail.
type fakeBackend struct{ dir string }

func (f fakeBackend) run(db string, settings []proto.Setting, query []byte, format string) (*result, error) {
	q := string(query)
	switch {
	case strings.Contains(q, "fail"):
		return nil, &Exception{Code: 60, Message: "DB::Exception: fail. (UNKNOWN_TABLE)"}
	case strings.HasPrefix(q, "DESCRIBE"):
		return &result{Data: appendBlock(nil, block{Rows: 2, Cols: []column{
			{Name: "name", Type: "String", Data: []byte("\x01a\x01s")},
			{Name: "type", Type: "String", Data: []byte("\x06UInt64\x06String")},
			{Name: "default_type", Type: "String", Data: []byte("\x00\x00")},
		}}, false, false)}, nil
	case strings.HasPrefix(q, "SELECT") && format == "Native":
		return &result{Data: appendBlock(nil, block{Rows: 2, Cols: []column{
			{Name: "a", Type: "UInt64", Data: make([]byte, 16)},
			{Name: "s", Type: "String", Data: []byte("\x01x\x00")},
		}}, false, false)}, nil
	}
	return &result{}, nil
}

func (f fakeBackend) use(db string) error {
	if db == "fail" {
		return &Exception{Code: 81, Message: "DB::Exception: Database fail does not exist. (UNKNOWN_DATABASE)"}
	}
	return nil
}

func (f fakeBackend) version() serverVersion {
	return serverVersion{major: 26, minor: 5, patch: 1, timezone: "UTC"}
}

func (f fakeBackend) tempDir() string { return f.dir }

// fuzzConn is a client connection that sends in and discards what the
// server writes.
type fuzzConn struct {
	net.Conn // nil: only Read, Write and Close are used
	in       *bytes.Reader
	wrote    int
}

func (c *fuzzConn) Read(p []byte) (int, error)  { return c.in.Read(p) }
func (c *fuzzConn) Write(p []byte) (int, error) { c.wrote += len(p); return len(p), nil }
func (c *fuzzConn) Close() error                { return nil }

func TestServeConversations(t *testing.T) {
	for _, conv := range conversations(t) {
		c := &fuzzConn{in: bytes.NewReader(conv)}
		if err := serveConn(fakeBackend{dir: t.TempDir()}, new(processes), c); err != nil {
			t.Errorf("conversation of %d bytes: %v", len(conv), err)
		}
		if c.in.Len() != 0 || c.wrote == 0 {
			t.Errorf("conversation: %d bytes left unread, %d written", c.in.Len(), c.wrote)
		}
	}
}

// FuzzServe feeds a connection with whole client conversations: the
// server must not panic, hang or allocate what it did not receive.
func FuzzServe(f *testing.F) {
	for _, conv := range conversations(f) {
		f.Add(conv)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &fuzzConn{in: bytes.NewReader(data)}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = serveConn(fakeBackend{dir: dir}, new(processes), c)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("serveConn did not return on %d bytes", len(data))
		}
	})
}

// FuzzDecode decodes arbitrary bytes as each client packet and as engine
// output.
func FuzzDecode(f *testing.F) {
	var b proto.Buffer
	proto.ClientHello{Name: "ch-go", Major: 1, Minor: 2, ProtocolVersion: proto.Version, Database: "db"}.Encode(&b)
	f.Add(b.Buf[1:])
	b.Reset()
	testQuery("SELECT 1", proto.CompressionEnabled).EncodeAware(&b, proto.Version)
	f.Add(b.Buf[1:])
	b.Reset()
	encodeData(f, &b, proto.Version, false, testInput())
	f.Add(b.Buf[2:])
	f.Add(appendBlock(nil, block{Rows: 1, Cols: []column{{Name: "lc", Type: "LowCardinality(String)",
		Data: []byte("\x01\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01x\x01\x00\x00\x00\x00\x00\x00\x00\x00")}}}, false, false))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = newWire(bytes.NewReader(data)).decodeHello()
		_, _ = newWire(bytes.NewReader(data)).decodeQuery(proto.Version)
		_, _ = newWire(bytes.NewReader(data)).decodeQuery(minClientRevision)
		br := blockReader{r: bytes.NewReader(data)}
		if b, err := br.readBlock(true, true); err == nil {
			// A block read encodes and reads back the same.
			br := blockReader{r: bytes.NewReader(appendBlock(nil, b, true, true))}
			again, err := br.readBlock(true, true)
			if err != nil || !reflect.DeepEqual(again, b) {
				t.Fatalf("block %+v read back as %+v, %v", b, again, err)
			}
		}
		_, _ = splitNative(data)
	})
}

// TestDecodeMatchesChGo decodes ch-go's packets with ch-go and with the
// server's own decoders and compares.
func TestDecodeMatchesChGo(t *testing.T) {
	for _, v := range []int{minClientRevision, int(proto.FeatureOpenTelemetry), int(proto.FeatureParallelReplicas), proto.Version} {
		var b proto.Buffer
		hello := proto.ClientHello{Name: "ch-go", Major: 1, Minor: 2, ProtocolVersion: v, Database: "db", User: "u", Password: "p"}
		hello.Encode(&b)
		got, err := newWire(bytes.NewReader(b.Buf[1:])).decodeHello()
		if err != nil || got != hello {
			t.Errorf("v%d hello: %+v, %v; want %+v", v, got, err, hello)
		}

		b.Reset()
		testQuery("SELECT 1", proto.CompressionEnabled).EncodeAware(&b, v)
		var want proto.Query
		if err := want.DecodeAware(proto.NewReader(bytes.NewReader(b.Buf[1:])), v); err != nil {
			t.Fatalf("v%d: ch-go decode: %v", v, err)
		}
		want.Info.Span = trace.SpanContext{} // not kept
		gotQ, err := newWire(bytes.NewReader(b.Buf[1:])).decodeQuery(v)
		if err != nil {
			t.Fatalf("v%d: decode: %v", v, err)
		}
		if !reflect.DeepEqual(gotQ, want) {
			t.Errorf("v%d query:\n got %+v\nwant %+v", v, gotQ, want)
		}
	}
	var b proto.Buffer
	encodeData(t, &b, proto.Version, true, testInput())
	w := newWire(bytes.NewReader(b.Buf[2:]))
	w.compressed = true
	br := blockReader{r: w}
	blk, err := br.readBlock(true, true)
	if err != nil {
		t.Fatal(err)
	}
	if blk.Rows != 5 || len(blk.Cols) != 2 || blk.Cols[1].Type != "String" || string(blk.Cols[1].Data) != "\x00\x01x\x02xx\x03xxx\x04xxxx" {
		t.Errorf("data block: %+v", blk)
	}
	if _, err := io.ReadAll(w); err != nil && err != io.EOF && !strings.Contains(err.Error(), "EOF") {
		t.Errorf("after the block: %v", err)
	}
}
