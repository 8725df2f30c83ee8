package pulsarpb

import (
	"encoding/binary"
	"fmt"

	"google.golang.org/protobuf/proto"
)

// AppendFrame appends cmd as a frame without payload: [totalSize][commandSize][command], both
// sizes big-endian uint32, totalSize counting everything after itself.
func AppendFrame(dst []byte, cmd *BaseCommand) []byte {
	size := proto.Size(cmd)
	dst = binary.BigEndian.AppendUint32(dst, uint32(size+4))
	dst = binary.BigEndian.AppendUint32(dst, uint32(size))
	dst, err := proto.MarshalOptions{}.MarshalAppend(dst, cmd)
	if err != nil {
		// Every command this project builds has its required fields; one that does not is a bug.
		panic(fmt.Sprintf("marshal %v: %v", cmd.GetType(), err))
	}
	return dst
}
