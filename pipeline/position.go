package pipeline

import (
	"fmt"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/apache/pulsar-client-go/pulsar"
)

// Position is a message's place in its partition: ledger, entry, and index within a batch
// entry. Positions of one partition are totally ordered the way Pulsar delivers them.
type Position struct {
	Ledger, Entry uint64
	Batch         uint32
}

// positionOf returns id's position; a negative batch index (not batched) counts as 0.
func positionOf(id pulsar.MessageID) Position {
	b := id.BatchIdx()
	if b < 0 {
		b = 0
	}
	return Position{Ledger: uint64(id.LedgerID()), Entry: uint64(id.EntryID()), Batch: uint32(b)}
}

// Less reports whether p comes before q.
func (p Position) Less(q Position) bool {
	if p.Ledger != q.Ledger {
		return p.Ledger < q.Ledger
	}
	if p.Entry != q.Entry {
		return p.Entry < q.Entry
	}
	return p.Batch < q.Batch
}

// IsZero reports whether p is the zero Position, which stands for "none".
func (p Position) IsZero() bool { return p == Position{} }

// batchBits is the room for the batch index in the low half of the UInt128 form; entry ids
// of a ledger stay far below 2^44.
const batchBits = 20

// UInt128 packs p for ClickHouse so that max() orders positions correctly.
func (p Position) UInt128() proto.UInt128 {
	return proto.UInt128{High: p.Ledger, Low: p.Entry<<batchBits | uint64(p.Batch)}
}

// positionFrom unpacks UInt128.
func positionFrom(v proto.UInt128) Position {
	return Position{Ledger: v.High, Entry: v.Low >> batchBits, Batch: uint32(v.Low & (1<<batchBits - 1))}
}

func (p Position) String() string { return fmt.Sprintf("%d:%d:%d", p.Ledger, p.Entry, p.Batch) }
