package pulsarlocal

import (
	"slices"
	"strings"

	pb "github.com/pipelined/pipelined/internal/pulsarpb"
)

// handlePartitionedMetadata answers the partition count of a topic. An
// unknown topic is created with Config.DefaultPartitions; a partition's name
// ("x-partition-3") and non-partitioned topics answer 0.
func (c *conn) handlePartitionedMetadata(cmd *pb.CommandPartitionedTopicMetadata) error {
	reqID := cmd.GetRequestId()
	full, err := fullTopicName(cmd.GetTopic())
	if err != nil {
		c.send(&pb.BaseCommand{
			Type: pb.BaseCommand_PARTITIONED_METADATA_RESPONSE.Enum(),
			PartitionMetadataResponse: &pb.CommandPartitionedTopicMetadataResponse{
				RequestId: ptr(reqID),
				Response:  pb.CommandPartitionedTopicMetadataResponse_Failed.Enum(),
				Error:     pb.ServerError_InvalidTopicName.Enum(),
				Message:   ptr(err.Error()),
			},
		})
		return nil
	}
	b := c.b
	b.mu.Lock()
	n, ok := b.partitioned[full]
	if !ok {
		_, exists := b.topics[full]
		if _, i := splitPartition(full); !exists && i < 0 {
			n = b.cfg.DefaultPartitions
			_ = b.createTopicLocked(full, n) // cannot fail: the topic does not exist
		}
	}
	b.mu.Unlock()
	c.send(&pb.BaseCommand{
		Type: pb.BaseCommand_PARTITIONED_METADATA_RESPONSE.Enum(),
		PartitionMetadataResponse: &pb.CommandPartitionedTopicMetadataResponse{
			RequestId:  ptr(reqID),
			Partitions: ptr(uint32(n)),
			Response:   pb.CommandPartitionedTopicMetadataResponse_Success.Enum(),
		},
	})
	return nil
}

// handleLookup answers every lookup with this broker itself.
func (c *conn) handleLookup(cmd *pb.CommandLookupTopic) error {
	c.send(&pb.BaseCommand{
		Type: pb.BaseCommand_LOOKUP_RESPONSE.Enum(),
		LookupTopicResponse: &pb.CommandLookupTopicResponse{
			RequestId:              ptr(cmd.GetRequestId()),
			BrokerServiceUrl:       ptr(c.b.url),
			Response:               pb.CommandLookupTopicResponse_Connect.Enum(),
			Authoritative:          ptr(true),
			ProxyThroughServiceUrl: ptr(false),
		},
	})
	return nil
}

// handleTopicsOfNamespace lists the persistent topics of a namespace, partitions
// by their partition names, as Pulsar does.
func (c *conn) handleTopicsOfNamespace(cmd *pb.CommandGetTopicsOfNamespace) error {
	prefix := topicPrefix + strings.TrimSuffix(cmd.GetNamespace(), "/") + "/"
	var names []string
	c.b.mu.Lock()
	for name := range c.b.topics {
		if strings.HasPrefix(name, prefix) && !strings.Contains(name[len(prefix):], "/") {
			names = append(names, name)
		}
	}
	c.b.mu.Unlock()
	slices.Sort(names)
	c.send(&pb.BaseCommand{
		Type: pb.BaseCommand_GET_TOPICS_OF_NAMESPACE_RESPONSE.Enum(),
		GetTopicsOfNamespaceResponse: &pb.CommandGetTopicsOfNamespaceResponse{
			RequestId: ptr(cmd.GetRequestId()),
			Topics:    names,
		},
	})
	return nil
}
