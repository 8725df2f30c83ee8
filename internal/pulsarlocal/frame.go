package pulsarlocal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/pipelined/pipelined/internal/pulsarpb"
)

// Wire format of every frame (big endian):
//
//	[totalSize uint32][cmdSize uint32][BaseCommand]
//	[magic 0x0e01][crc32c uint32][metadataSize uint32][MessageMetadata][payload]   (payload commands only)
//
// totalSize counts everything after itself. The checksum covers metadataSize,
// metadata and payload.

const (
	// maxFrameSize bounds a frame read from a client: Pulsar's default 5 MiB
	// message size plus 10 KiB of command padding, as the client assumes.
	maxFrameSize = 5*1024*1024 + 10*1024
	// magicCRC32C starts the checksummed headers-and-payload part of a frame.
	magicCRC32C = 0x0e01
	// ledgerID is the only ledger of every topic; entry IDs index the topic's entries.
	ledgerID = 1
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errFrame reports a malformed frame; the connection that sent it is closed.
var errFrame = errors.New("malformed frame")

// readFrame reads one frame from r into buf (grown as needed) and returns the
// decoded command and the headers-and-payload part, which aliases buf.
func readFrame(r io.Reader, buf []byte) (cmd *pb.BaseCommand, payload, newBuf []byte, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, nil, buf, err
	}
	total := binary.BigEndian.Uint32(hdr[:])
	if total < 4 || total > maxFrameSize {
		return nil, nil, buf, fmt.Errorf("frame size %d: %w", total, errFrame)
	}
	if cap(buf) < int(total) {
		buf = make([]byte, total)
	}
	buf = buf[:total]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, nil, buf, fmt.Errorf("frame body of %d bytes: %w", total, err)
	}
	cmd, payload, err = decodeFrame(buf)
	return cmd, payload, buf, err
}

// decodeFrame decodes a frame body (everything after totalSize).
func decodeFrame(body []byte) (*pb.BaseCommand, []byte, error) {
	if len(body) < 4 {
		return nil, nil, fmt.Errorf("frame body of %d bytes: %w", len(body), errFrame)
	}
	cmdSize := binary.BigEndian.Uint32(body)
	if uint64(cmdSize) > uint64(len(body)-4) {
		return nil, nil, fmt.Errorf("command size %d in frame of %d bytes: %w", cmdSize, len(body), errFrame)
	}
	cmd := &pb.BaseCommand{}
	if err := proto.Unmarshal(body[4:4+cmdSize], cmd); err != nil {
		return nil, nil, fmt.Errorf("command: %w: %w", errFrame, err)
	}
	if cmd.Type == nil {
		return nil, nil, fmt.Errorf("command without type: %w", errFrame)
	}
	var payload []byte
	if rest := body[4+cmdSize:]; len(rest) > 0 {
		payload = rest
	}
	return cmd, payload, nil
}

// appendPayloadFrame appends cmd followed by an already checksummed
// headers-and-payload part (as stored for an entry).
func appendPayloadFrame(dst []byte, cmd *pb.BaseCommand, headersAndPayload []byte) []byte {
	size := proto.Size(cmd)
	dst = binary.BigEndian.AppendUint32(dst, uint32(size+4+len(headersAndPayload)))
	dst = binary.BigEndian.AppendUint32(dst, uint32(size))
	dst, err := proto.MarshalOptions{}.MarshalAppend(dst, cmd)
	if err != nil {
		panic(fmt.Sprintf("marshal %v: %v", cmd.GetType(), err))
	}
	return append(dst, headersAndPayload...)
}

// appendMessageFrame appends a MESSAGE frame for one stored entry without
// allocating: the BaseCommand{type: MESSAGE, message: CommandMessage} is
// encoded by hand.
func appendMessageFrame(dst []byte, consumerID uint64, entryID int64, redelivery uint32, entry []byte) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	// MessageIdData{ledgerId: 1, entryId: 2}
	idSize := 1 + protowire.SizeVarint(ledgerID) + 1 + protowire.SizeVarint(uint64(entryID))
	// CommandMessage{consumer_id: 1, message_id: 2, redelivery_count: 3}
	msgSize := 1 + protowire.SizeVarint(consumerID) + 1 + protowire.SizeVarint(uint64(idSize)) + idSize
	if redelivery > 0 {
		msgSize += 1 + protowire.SizeVarint(uint64(redelivery))
	}
	dst = protowire.AppendTag(dst, 1, protowire.VarintType)
	dst = protowire.AppendVarint(dst, uint64(pb.BaseCommand_MESSAGE))
	dst = protowire.AppendTag(dst, 9, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(msgSize))
	dst = protowire.AppendTag(dst, 1, protowire.VarintType)
	dst = protowire.AppendVarint(dst, consumerID)
	dst = protowire.AppendTag(dst, 2, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(idSize))
	dst = protowire.AppendTag(dst, 1, protowire.VarintType)
	dst = protowire.AppendVarint(dst, ledgerID)
	dst = protowire.AppendTag(dst, 2, protowire.VarintType)
	dst = protowire.AppendVarint(dst, uint64(entryID))
	if redelivery > 0 {
		dst = protowire.AppendTag(dst, 3, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(redelivery))
	}
	cmdSize := len(dst) - start - 8
	binary.BigEndian.PutUint32(dst[start:], uint32(4+cmdSize+len(entry)))
	binary.BigEndian.PutUint32(dst[start+4:], uint32(cmdSize))
	return append(dst, entry...)
}

// entryPart is the parsed headers-and-payload part of a payload frame.
type entryPart struct {
	meta    []byte // serialized MessageMetadata
	payload []byte
}

// parseEntry checks the magic number and checksum of a headers-and-payload part.
func parseEntry(b []byte) (entryPart, error) {
	if len(b) < 10 {
		return entryPart{}, fmt.Errorf("entry of %d bytes: %w", len(b), errFrame)
	}
	if m := binary.BigEndian.Uint16(b); m != magicCRC32C {
		return entryPart{}, fmt.Errorf("entry magic %#x: %w", m, errFrame)
	}
	sum := binary.BigEndian.Uint32(b[2:])
	if got := crc32.Checksum(b[6:], crcTable); got != sum {
		return entryPart{}, fmt.Errorf("entry checksum %#x, computed %#x: %w", sum, got, errFrame)
	}
	n := binary.BigEndian.Uint32(b[6:])
	if uint64(n) > uint64(len(b)-10) {
		return entryPart{}, fmt.Errorf("metadata size %d in entry of %d bytes: %w", n, len(b), errFrame)
	}
	return entryPart{meta: b[10 : 10+n], payload: b[10+n:]}, nil
}

// appendEntry appends a checksummed headers-and-payload part built from
// metadata and payload.
func appendEntry(dst []byte, meta *pb.MessageMetadata, payload []byte) []byte {
	start := len(dst)
	dst = binary.BigEndian.AppendUint16(dst, magicCRC32C)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(proto.Size(meta)))
	dst, err := proto.MarshalOptions{}.MarshalAppend(dst, meta)
	if err != nil {
		panic(fmt.Sprintf("marshal metadata: %v", err))
	}
	dst = append(dst, payload...)
	binary.BigEndian.PutUint32(dst[start+2:], crc32.Checksum(dst[start+6:], crcTable))
	return dst
}
