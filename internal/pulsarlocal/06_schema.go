package pulsarlocal

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"google.golang.org/protobuf/proto"

	pb "github.com/pipelined/pipelined/internal/pulsarpb"
)

// schemaEntry holds the schema versions of one (base) topic; version i is
// encoded as an 8-byte big-endian integer, as Pulsar does.
type schemaEntry struct {
	versions []*pb.Schema
}

func schemaVersion(i int) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(i))
}

// putSchema stores s for the base topic of full and returns its version: an
// existing one when type and definition match, else a new one. No
// compatibility check.
func (b *Broker) putSchema(full string, s *pb.Schema) []byte {
	base, _ := splitPartition(full)
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.schemas[base]
	if !ok {
		e = &schemaEntry{}
		b.schemas[base] = e
	}
	for i, v := range e.versions {
		if v.GetType() == s.GetType() && bytes.Equal(v.GetSchemaData(), s.GetSchemaData()) {
			return schemaVersion(i)
		}
	}
	e.versions = append(e.versions, proto.Clone(s).(*pb.Schema))
	return schemaVersion(len(e.versions) - 1)
}

// getSchema returns the version of base topic full, the latest when version is empty.
func (b *Broker) getSchema(full string, version []byte) (*pb.Schema, []byte, error) {
	base, _ := splitPartition(full)
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.schemas[base]
	if !ok || len(e.versions) == 0 {
		return nil, nil, fmt.Errorf("topic %q has no schema", base)
	}
	i := len(e.versions) - 1
	if len(version) == 8 {
		i = int(binary.BigEndian.Uint64(version))
	}
	if i < 0 || i >= len(e.versions) {
		return nil, nil, fmt.Errorf("topic %q has no schema version %x", base, version)
	}
	return e.versions[i], schemaVersion(i), nil
}

// handleGetSchema answers a topic's schema.
func (c *conn) handleGetSchema(cmd *pb.CommandGetSchema) error {
	resp := &pb.CommandGetSchemaResponse{RequestId: ptr(cmd.GetRequestId())}
	full, err := fullTopicName(cmd.GetTopic())
	var s *pb.Schema
	if err == nil {
		s, resp.SchemaVersion, err = c.b.getSchema(full, cmd.GetSchemaVersion())
	}
	if err != nil {
		resp.ErrorCode = pb.ServerError_TopicNotFound.Enum()
		resp.ErrorMessage = ptr(err.Error())
	} else {
		resp.Schema = s
	}
	c.send(&pb.BaseCommand{Type: pb.BaseCommand_GET_SCHEMA_RESPONSE.Enum(), GetSchemaResponse: resp})
	return nil
}

// handleGetOrCreateSchema registers a schema for a topic and answers its version.
func (c *conn) handleGetOrCreateSchema(cmd *pb.CommandGetOrCreateSchema) error {
	resp := &pb.CommandGetOrCreateSchemaResponse{RequestId: ptr(cmd.GetRequestId())}
	full, err := fullTopicName(cmd.GetTopic())
	switch {
	case err != nil:
		resp.ErrorCode = pb.ServerError_InvalidTopicName.Enum()
		resp.ErrorMessage = ptr(err.Error())
	case cmd.GetSchema() == nil:
		resp.ErrorCode = pb.ServerError_IncompatibleSchema.Enum()
		resp.ErrorMessage = ptr("no schema in request")
	default:
		resp.SchemaVersion = c.b.putSchema(full, cmd.GetSchema())
	}
	c.send(&pb.BaseCommand{Type: pb.BaseCommand_GET_OR_CREATE_SCHEMA_RESPONSE.Enum(), GetOrCreateSchemaResponse: resp})
	return nil
}
