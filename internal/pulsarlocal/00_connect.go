package pulsarlocal

import (
	pb "github.com/pipelined/pipelined/internal/pulsarpb"
)

// maxProtocolVersion is the newest protocol version this broker speaks; a
// client's CONNECT is answered with the smaller of its version and this one.
const maxProtocolVersion = int32(pb.ProtocolVersion_v20)

// handleConnect answers CONNECT with CONNECTED. No authentication.
func (c *conn) handleConnect(cmd *pb.CommandConnect) error {
	v := min(cmd.GetProtocolVersion(), maxProtocolVersion)
	c.send(&pb.BaseCommand{
		Type: pb.BaseCommand_CONNECTED.Enum(),
		Connected: &pb.CommandConnected{
			ServerVersion:   ptr("pulsarlocal"),
			ProtocolVersion: ptr(v),
			MaxMessageSize:  ptr(int32(c.b.cfg.MaxMessageSize)),
		},
	})
	return nil
}
