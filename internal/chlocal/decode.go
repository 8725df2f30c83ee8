package chlocal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/ClickHouse/ch-go/compress"
	"github.com/ClickHouse/ch-go/proto"
)

// Client packets are decoded into ch-go's proto types by hand rather than
// with their Decode methods: those allocate whatever length a string claims
// before reading it, so a few garbage bytes could make the server allocate
// terabytes. Here a string grows only as its bytes arrive.

// Limits on client packets.
const (
	maxQueryLen = 256 << 20 // query body; inline INSERT data counts
	maxFieldLen = 1 << 20   // any other string
	maxSettings = 10_000    // settings or parameters in one query
)

// errTooLong is returned for strings longer than their limit.
var errTooLong = errors.New("string too long")

// wire reads a client connection, through ClickHouse block decompression
// while compressed is set.
type wire struct {
	raw        *bufio.Reader
	dec        *compress.Reader
	compressed bool
	one        [1]byte
}

func newWire(r io.Reader) *wire {
	raw := bufio.NewReaderSize(r, 64<<10)
	return &wire{raw: raw, dec: compress.NewReader(raw)}
}

// Read implements io.Reader.
func (w *wire) Read(p []byte) (int, error) {
	if w.compressed {
		return w.dec.Read(p)
	}
	return w.raw.Read(p)
}

// ReadByte implements io.ByteReader.
func (w *wire) ReadByte() (byte, error) {
	if !w.compressed {
		return w.raw.ReadByte()
	}
	if _, err := io.ReadFull(w.dec, w.one[:]); err != nil {
		return 0, err
	}
	return w.one[0], nil
}

func (w *wire) uvarint() (uint64, error) {
	v, err := binary.ReadUvarint(w)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return v, err
}

// int reads a UVarInt that must fit an int.
func (w *wire) int() (int, error) {
	v, err := w.uvarint()
	if err != nil {
		return 0, err
	}
	if v > 1<<31 {
		return 0, fmt.Errorf("integer %d out of range", v)
	}
	return int(v), nil
}

func (w *wire) byte() (byte, error) {
	b, err := w.ReadByte()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return b, err
}

func (w *wire) skip(n int) error {
	_, err := io.CopyN(io.Discard, w, int64(n))
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// str reads a string of at most limit bytes.
func (w *wire) str(limit int) (string, error) {
	n, err := w.uvarint()
	if err != nil {
		return "", err
	}
	if n > uint64(limit) {
		return "", fmt.Errorf("%d bytes, limit %d: %w", n, limit, errTooLong)
	}
	if n <= 4096 {
		buf := make([]byte, n)
		if _, err := io.ReadFull(w, buf); err != nil {
			return "", unexpectedEOF(err)
		}
		return string(buf), nil
	}
	var buf []byte
	for left := int(n); left > 0; {
		chunk := min(left, 1<<20)
		start := len(buf)
		buf = slices.Grow(buf, chunk)[:start+chunk]
		if _, err := io.ReadFull(w, buf[start:]); err != nil {
			return "", unexpectedEOF(err)
		}
		left -= chunk
	}
	return string(buf), nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// decodeHello decodes ClientHello after its packet code.
func (w *wire) decodeHello() (proto.ClientHello, error) {
	var h proto.ClientHello
	var err error
	if h.Name, err = w.str(maxFieldLen); err != nil {
		return h, fmt.Errorf("client name: %w", err)
	}
	if h.Major, err = w.int(); err != nil {
		return h, fmt.Errorf("major version: %w", err)
	}
	if h.Minor, err = w.int(); err != nil {
		return h, fmt.Errorf("minor version: %w", err)
	}
	if h.ProtocolVersion, err = w.int(); err != nil {
		return h, fmt.Errorf("protocol version: %w", err)
	}
	if h.Database, err = w.str(maxFieldLen); err != nil {
		return h, fmt.Errorf("database: %w", err)
	}
	if h.User, err = w.str(maxFieldLen); err != nil {
		return h, fmt.Errorf("user: %w", err)
	}
	if h.Password, err = w.str(maxFieldLen); err != nil {
		return h, fmt.Errorf("password: %w", err)
	}
	return h, nil
}

// decodeQuery decodes a Query packet after its packet code, for protocol
// version v (at least FeatureSettingsSerializedAsStrings).
func (w *wire) decodeQuery(v int) (proto.Query, error) {
	var q proto.Query
	var err error
	if q.ID, err = w.str(maxFieldLen); err != nil {
		return q, fmt.Errorf("query id: %w", err)
	}
	if proto.FeatureClientWriteInfo.In(v) {
		if q.Info, err = w.decodeClientInfo(v); err != nil {
			return q, fmt.Errorf("client info: %w", err)
		}
	}
	if q.Settings, err = w.decodeSettings(); err != nil {
		return q, fmt.Errorf("settings: %w", err)
	}
	if proto.FeatureInterServerSecret.In(v) {
		if q.Secret, err = w.str(maxFieldLen); err != nil {
			return q, fmt.Errorf("inter-server secret: %w", err)
		}
	}
	stage, err := w.uvarint()
	if err != nil {
		return q, fmt.Errorf("stage: %w", err)
	}
	if q.Stage = proto.Stage(stage); !q.Stage.IsAStage() {
		return q, fmt.Errorf("unknown stage %d", stage)
	}
	compression, err := w.uvarint()
	if err != nil {
		return q, fmt.Errorf("compression: %w", err)
	}
	if q.Compression = proto.Compression(compression); !q.Compression.IsACompression() {
		return q, fmt.Errorf("unknown compression %d", compression)
	}
	if q.Body, err = w.str(maxQueryLen); err != nil {
		return q, fmt.Errorf("query body: %w", err)
	}
	if proto.FeatureParameters.In(v) {
		params, err := w.decodeSettings()
		if err != nil {
			return q, fmt.Errorf("parameters: %w", err)
		}
		for _, p := range params {
			q.Parameters = append(q.Parameters, proto.Parameter{Key: p.Key, Value: p.Value})
		}
	}
	return q, nil
}

// Flags of a setting (BaseSettingsHelpers::Flags).
const (
	settingImportant = 0x01
	settingCustom    = 0x02
	settingObsolete  = 0x04
)

// decodeSettings reads settings serialized as strings, up to an empty key.
func (w *wire) decodeSettings() ([]proto.Setting, error) {
	var out []proto.Setting
	for {
		key, err := w.str(maxFieldLen)
		if err != nil {
			return nil, fmt.Errorf("key: %w", err)
		}
		if key == "" {
			return out, nil
		}
		if len(out) == maxSettings {
			return nil, fmt.Errorf("more than %d", maxSettings)
		}
		flags, err := w.uvarint()
		if err != nil {
			return nil, fmt.Errorf("%q flags: %w", key, err)
		}
		value, err := w.str(maxFieldLen)
		if err != nil {
			return nil, fmt.Errorf("%q value: %w", key, err)
		}
		out = append(out, proto.Setting{
			Key:       key,
			Value:     value,
			Important: flags&settingImportant != 0,
			Custom:    flags&settingCustom != 0,
			Obsolete:  flags&settingObsolete != 0,
		})
	}
}

// decodeClientInfo reads ClientInfo as ch-go's proto.ClientInfo.DecodeAware
// does; the OpenTelemetry span is read and dropped.
func (w *wire) decodeClientInfo(v int) (proto.ClientInfo, error) {
	var c proto.ClientInfo
	kind, err := w.byte()
	if err != nil {
		return c, fmt.Errorf("query kind: %w", err)
	}
	if c.Query = proto.ClientQueryKind(kind); !c.Query.IsAClientQueryKind() {
		return c, fmt.Errorf("unknown query kind %d", kind)
	}
	for _, f := range []struct {
		dst  *string
		name string
	}{
		{&c.InitialUser, "initial user"},
		{&c.InitialQueryID, "initial query id"},
		{&c.InitialAddress, "initial address"},
	} {
		if *f.dst, err = w.str(maxFieldLen); err != nil {
			return c, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	if proto.FeatureQueryStartTime.In(v) {
		var t [8]byte
		if _, err := io.ReadFull(w, t[:]); err != nil {
			return c, fmt.Errorf("query start time: %w", unexpectedEOF(err))
		}
		c.InitialTime = int64(binary.LittleEndian.Uint64(t[:]))
	}
	iface, err := w.byte()
	if err != nil {
		return c, fmt.Errorf("interface: %w", err)
	}
	if c.Interface = proto.Interface(iface); c.Interface != proto.InterfaceTCP {
		return c, fmt.Errorf("interface %d is not TCP", iface)
	}
	for _, f := range []struct {
		dst  *string
		name string
	}{
		{&c.OSUser, "os user"},
		{&c.ClientHostname, "client hostname"},
		{&c.ClientName, "client name"},
	} {
		if *f.dst, err = w.str(maxFieldLen); err != nil {
			return c, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	for _, f := range []struct {
		dst  *int
		name string
	}{
		{&c.Major, "major version"},
		{&c.Minor, "minor version"},
		{&c.ProtocolVersion, "protocol version"},
	} {
		if *f.dst, err = w.int(); err != nil {
			return c, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	if proto.FeatureQuotaKeyInClientInfo.In(v) {
		if c.QuotaKey, err = w.str(maxFieldLen); err != nil {
			return c, fmt.Errorf("quota key: %w", err)
		}
	}
	if proto.FeatureDistributedDepth.In(v) {
		if c.DistributedDepth, err = w.int(); err != nil {
			return c, fmt.Errorf("distributed depth: %w", err)
		}
	}
	if proto.FeatureVersionPatch.In(v) {
		if c.Patch, err = w.int(); err != nil {
			return c, fmt.Errorf("patch version: %w", err)
		}
	}
	if proto.FeatureOpenTelemetry.In(v) {
		hasTrace, err := w.byte()
		if err != nil {
			return c, fmt.Errorf("open telemetry: %w", err)
		}
		if hasTrace != 0 {
			if err := w.skip(16 + 8); err != nil { // trace id, span id
				return c, fmt.Errorf("trace id: %w", err)
			}
			if _, err := w.str(maxFieldLen); err != nil {
				return c, fmt.Errorf("trace state: %w", err)
			}
			if _, err := w.byte(); err != nil {
				return c, fmt.Errorf("trace flags: %w", err)
			}
		}
	}
	if proto.FeatureParallelReplicas.In(v) {
		collaborate, err := w.int()
		if err != nil {
			return c, fmt.Errorf("parallel replicas: %w", err)
		}
		c.CollaborateWithInitiator = collaborate == 1
		if c.CountParticipatingReplicas, err = w.int(); err != nil {
			return c, fmt.Errorf("count participating replicas: %w", err)
		}
		if c.NumberOfCurrentReplica, err = w.int(); err != nil {
			return c, fmt.Errorf("number of current replica: %w", err)
		}
	}
	return c, nil
}
