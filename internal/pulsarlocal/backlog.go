package pulsarlocal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/pierrec/lz4/v4"
	"google.golang.org/protobuf/encoding/protowire"

	pb "github.com/pipelined/pipelined/internal/pulsarpb"
)

// Message is one message of a batch built by AppendBatch.
type Message struct {
	Key         string            // partition key; empty for none
	Payload     []byte            // message value, e.g. Avro binary
	EventTimeMs int64             // event time in Unix milliseconds; 0 for none
	Properties  map[string]string // optional
}

// batchBuilder holds the scratch buffers of one AppendBatch call.
type batchBuilder struct {
	raw   []byte // uncompressed batch payload
	comp  []byte // LZ4 block
	entry []byte // headers-and-payload
	hash  []int  // LZ4 hash table
	md    pb.MessageMetadata
}

var builders = sync.Pool{New: func() any { return &batchBuilder{hash: make([]int, 1<<16)} }}

// AppendBatch appends msgs as one batch entry to a partition of topic
// (partition -1 for a non-partitioned topic, created if missing; a
// partitioned topic must exist) and dispatches it. The entry looks like one
// from pulsar-client-go's producer with batching and LZ4 compression: a
// SingleMessageMetadata per message and num_messages_in_batch in the
// MessageMetadata.
func (b *Broker) AppendBatch(topic string, partition int, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	t, err := b.appendTarget(topic, partition)
	if err != nil {
		return err
	}
	bb := builders.Get().(*batchBuilder)
	defer builders.Put(bb)
	data := bb.build(msgs, time.Now().UnixMilli())
	t.mu.Lock()
	t.appendLocked(data, int32(len(msgs)))
	t.dispatchAllLocked()
	t.mu.Unlock()
	return nil
}

func (b *Broker) appendTarget(name string, partition int) (*topic, error) {
	full, err := fullTopicName(name)
	if err != nil {
		return nil, err
	}
	if partition < 0 {
		return b.getTopic(full)
	}
	return b.lookupTopic(full, partition)
}

// build encodes msgs as a batch entry in bb.entry and returns it.
func (bb *batchBuilder) build(msgs []Message, nowMs int64) []byte {
	bb.raw = bb.raw[:0]
	for i := range msgs {
		bb.raw = appendSingleMessage(bb.raw, &msgs[i])
	}
	bb.md.Reset()
	bb.md.ProducerName = ptr("pulsarlocal")
	bb.md.SequenceId = ptr(uint64(0))
	bb.md.PublishTime = ptr(uint64(nowMs))
	bb.md.NumMessagesInBatch = ptr(int32(len(msgs)))
	payload := bb.raw
	if need := lz4.CompressBlockBound(len(bb.raw)); cap(bb.comp) < need {
		bb.comp = make([]byte, need)
	}
	n, err := lz4.CompressBlock(bb.raw, bb.comp[:cap(bb.comp)], bb.hash)
	if err == nil && n > 0 {
		payload = bb.comp[:n]
		bb.md.Compression = pb.CompressionType_LZ4.Enum()
		bb.md.UncompressedSize = ptr(uint32(len(bb.raw)))
	}
	bb.entry = appendEntry(bb.entry[:0], &bb.md, payload)
	return bb.entry
}

// Backlog file format (big endian), streamed:
//
//	"PLTOPIC1" [u32 name length][name] [u32 partitions]
//	repeated: [u32 partition][u32 messages][u32 length][entry]
//	end: [u32 0xFFFFFFFF]
//
// An entry is the stored headers-and-payload part, as sent on the wire.
const (
	backlogMagic = "PLTOPIC1"
	backlogEnd   = 0xFFFFFFFF
)

// SaveTopic writes every stored entry of topic (all partitions) to w.
func (b *Broker) SaveTopic(topic string, w io.Writer) error {
	full, err := fullTopicName(topic)
	if err != nil {
		return err
	}
	ts, err := b.topicPartitions(full)
	if err != nil {
		return err
	}
	b.mu.Lock()
	partitions := b.partitioned[full]
	b.mu.Unlock()
	bw := bufio.NewWriterSize(w, 1<<20)
	var hdr []byte
	hdr = append(hdr, backlogMagic...)
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(full)))
	hdr = append(hdr, full...)
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(partitions))
	bw.Write(hdr)
	for i, t := range ts {
		t.mu.Lock()
		entries := t.entries[:len(t.entries):len(t.entries)] // entries are immutable once stored
		t.mu.Unlock()
		for _, e := range entries {
			var rec [12]byte
			binary.BigEndian.PutUint32(rec[0:], uint32(i))
			binary.BigEndian.PutUint32(rec[4:], uint32(e.n))
			binary.BigEndian.PutUint32(rec[8:], uint32(len(e.data)))
			bw.Write(rec[:])
			if _, err := bw.Write(e.data); err != nil {
				return fmt.Errorf("save topic %q: %w", full, err)
			}
		}
	}
	var end [4]byte
	binary.BigEndian.PutUint32(end[:], backlogEnd)
	bw.Write(end[:])
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("save topic %q: %w", full, err)
	}
	return nil
}

// LoadTopic reads a file written by SaveTopic, creates the topic if needed
// (with the saved partition count) and appends the entries to it.
func (b *Broker) LoadTopic(r io.Reader) error {
	br := bufio.NewReaderSize(r, 1<<20)
	var hdr [12]byte
	if _, err := io.ReadFull(br, hdr[:12]); err != nil {
		return fmt.Errorf("load topic: header: %w", err)
	}
	if string(hdr[:8]) != backlogMagic {
		return fmt.Errorf("load topic: magic %q, want %q", hdr[:8], backlogMagic)
	}
	nameLen := binary.BigEndian.Uint32(hdr[8:])
	if nameLen > 4096 {
		return fmt.Errorf("load topic: name length %d", nameLen)
	}
	name := make([]byte, nameLen+4)
	if _, err := io.ReadFull(br, name); err != nil {
		return fmt.Errorf("load topic: header: %w", err)
	}
	full := string(name[:nameLen])
	partitions := int(binary.BigEndian.Uint32(name[nameLen:]))
	if err := b.CreateTopic(full, partitions); err != nil {
		return fmt.Errorf("load topic: %w", err)
	}
	ts, err := b.topicPartitions(full)
	if err != nil {
		return fmt.Errorf("load topic: %w", err)
	}
	var buf []byte
	loaded := make([]bool, len(ts))
	defer func() {
		for i, t := range ts {
			if loaded[i] {
				t.mu.Lock()
				t.dispatchAllLocked()
				t.mu.Unlock()
			}
		}
	}()
	for {
		var rec [12]byte
		if _, err := io.ReadFull(br, rec[:4]); err != nil {
			return fmt.Errorf("load topic %q: %w", full, noEOF(err))
		}
		p := binary.BigEndian.Uint32(rec[:4])
		if p == backlogEnd {
			return nil
		}
		if _, err := io.ReadFull(br, rec[4:]); err != nil {
			return fmt.Errorf("load topic %q: %w", full, noEOF(err))
		}
		n := binary.BigEndian.Uint32(rec[4:])
		size := binary.BigEndian.Uint32(rec[8:])
		if int(p) >= len(ts) || size > maxFrameSize {
			return fmt.Errorf("load topic %q: record for partition %d of %d, %d bytes", full, p, len(ts), size)
		}
		if cap(buf) < int(size) {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if _, err := io.ReadFull(br, buf); err != nil {
			return fmt.Errorf("load topic %q: %w", full, noEOF(err))
		}
		t := ts[p]
		t.mu.Lock()
		t.appendLocked(buf, int32(n))
		t.mu.Unlock()
		loaded[p] = true
	}
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// appendSingleMessage appends [u32 size][SingleMessageMetadata][payload] for m,
// encoding the metadata by hand to build large backlogs without allocating.
// Field numbers are those of PulsarApi.proto's SingleMessageMetadata.
func appendSingleMessage(dst []byte, m *Message) []byte {
	size := 1 + protowire.SizeVarint(uint64(len(m.Payload))) // payload_size = 3
	if m.Key != "" {
		size += 1 + protowire.SizeBytes(len(m.Key)) // partition_key = 2
	}
	if m.EventTimeMs != 0 {
		size += 1 + protowire.SizeVarint(uint64(m.EventTimeMs)) // event_time = 5
	}
	for k, v := range m.Properties { // properties = 1, KeyValue{key = 1, value = 2}
		kv := 1 + protowire.SizeBytes(len(k)) + 1 + protowire.SizeBytes(len(v))
		size += 1 + protowire.SizeBytes(kv)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(size))
	for k, v := range m.Properties {
		kv := 1 + protowire.SizeBytes(len(k)) + 1 + protowire.SizeBytes(len(v))
		dst = protowire.AppendTag(dst, 1, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(kv))
		dst = protowire.AppendTag(dst, 1, protowire.BytesType)
		dst = protowire.AppendString(dst, k)
		dst = protowire.AppendTag(dst, 2, protowire.BytesType)
		dst = protowire.AppendString(dst, v)
	}
	if m.Key != "" {
		dst = protowire.AppendTag(dst, 2, protowire.BytesType)
		dst = protowire.AppendString(dst, m.Key)
	}
	dst = protowire.AppendTag(dst, 3, protowire.VarintType)
	dst = protowire.AppendVarint(dst, uint64(len(m.Payload)))
	if m.EventTimeMs != 0 {
		dst = protowire.AppendTag(dst, 5, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(m.EventTimeMs))
	}
	return append(dst, m.Payload...)
}
