package registry

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"

	pb "github.com/pipelined/pipelined/internal/pulsarpb"
)

// A frame is [totalSize uint32][cmdSize uint32][BaseCommand][payload], big endian; totalSize
// counts everything after itself. Responses to our requests carry no payload; a payload that
// follows the command is skipped.

const (
	// defaultMaxFrame bounds a frame before CONNECTED tells the broker's max_message_size:
	// Pulsar's default 5 MiB message plus the 10 KiB of command padding the clients allow.
	defaultMaxFrame = 5*1024*1024 + 10*1024
	// frameOverhead is added to the broker's max_message_size.
	frameOverhead = 10 * 1024
	// maxFrameLimit caps a broker-advertised size: no schema is anywhere near it.
	maxFrameLimit = 64 * 1024 * 1024
)

// errFrame reports a malformed frame.
var errFrame = errors.New("malformed frame")

// readFrame reads one frame from r into buf (grown as needed, returned for reuse) and decodes
// its command. A frame larger than maxFrame is refused before its body is read.
func readFrame(r io.Reader, buf []byte, maxFrame int) (*pb.BaseCommand, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, buf, err
	}
	total := binary.BigEndian.Uint32(hdr[:])
	if total < 4 || uint64(total) > uint64(maxFrame) {
		return nil, buf, fmt.Errorf("frame size %d (limit %d): %w", total, maxFrame, errFrame)
	}
	if cap(buf) < int(total) {
		buf = make([]byte, total)
	}
	buf = buf[:total]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, buf, fmt.Errorf("frame body of %d bytes: %w", total, err)
	}
	cmdSize := binary.BigEndian.Uint32(buf)
	if uint64(cmdSize) > uint64(total-4) {
		return nil, buf, fmt.Errorf("command size %d in frame of %d bytes: %w", cmdSize, total, errFrame)
	}
	cmd := &pb.BaseCommand{}
	if err := proto.Unmarshal(buf[4:4+cmdSize], cmd); err != nil {
		return nil, buf, fmt.Errorf("command of %d bytes: %w: %w", cmdSize, errFrame, err)
	}
	return cmd, buf, nil
}
