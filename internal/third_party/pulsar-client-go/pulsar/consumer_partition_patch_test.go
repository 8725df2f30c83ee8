// Licensed to the Apache Software Foundation (ASF) under one
// or more contributor license agreements.  See the NOTICE file
// distributed with this work for additional information
// regarding copyright ownership.  The ASF licenses this file
// to you under the Apache License, Version 2.0 (the
// "License"); you may not use this file except in compliance
// with the License.  You may obtain a copy of the License at
//
//   http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing,
// software distributed under the License is distributed on an
// "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY
// KIND, either express or implied.  See the License for the
// specific language governing permissions and limitations
// under the License.

// pipelined patch (not in upstream v0.19.0): tests of the patched MessageReceived and
// dispatcher (see PATCHES.md). The build constraint lets it use testing/synctest
// (Go 1.25) in a module whose go.mod says 1.24.

//go:build go1.25

package pulsar

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"github.com/apache/pulsar-client-go/pulsar/internal"
	"github.com/apache/pulsar-client-go/pulsar/internal/crypto"
	pb "github.com/apache/pulsar-client-go/pulsar/internal/pulsar_proto"
	"github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/bits-and-blooms/bitset"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// patchConn is a connection MessageReceived only keeps; nothing is sent on it.
type patchConn struct{ internal.Connection }

type patchEntry struct {
	key         string
	orderingKey string
	event       uint64
	payload     string
	properties  map[string]string
}

// patchBatch is an uncompressed batch frame (checksum, metadata, entries) as a broker sends it.
func patchBatch(entries []patchEntry) []byte {
	var body []byte
	for _, e := range entries {
		smm := &pb.SingleMessageMetadata{PayloadSize: proto.Int32(int32(len(e.payload))), EventTime: proto.Uint64(e.event)}
		if e.key != "" {
			smm.PartitionKey = proto.String(e.key)
		}
		if e.orderingKey != "" {
			smm.OrderingKey = []byte(e.orderingKey)
		}
		for k, v := range e.properties {
			smm.Properties = append(smm.Properties, &pb.KeyValue{Key: proto.String(k), Value: proto.String(v)})
		}
		b, err := proto.Marshal(smm)
		if err != nil {
			panic(err)
		}
		body = binary.BigEndian.AppendUint32(body, uint32(len(b)))
		body = append(append(body, b...), e.payload...)
	}
	meta, err := proto.Marshal(&pb.MessageMetadata{ProducerName: proto.String("producer-1"), SequenceId: proto.Uint64(1),
		PublishTime: proto.Uint64(1767225650999), NumMessagesInBatch: proto.Int32(int32(len(entries))),
		ReplicatedFrom: proto.String("west"), ReplicateTo: []string{"east", "north"}, SchemaVersion: []byte{0, 3}})
	if err != nil {
		panic(err)
	}
	framed := binary.BigEndian.AppendUint32(nil, uint32(len(meta)))
	framed = append(append(framed, meta...), body...)
	frame := binary.BigEndian.AppendUint16(nil, 0x0e01)
	frame = binary.BigEndian.AppendUint32(frame, internal.Crc32cCheckSum(framed))
	return append(frame, framed...)
}

func newPatchConsumer(messageCh chan ConsumerMessage) *partitionConsumer {
	pc := &partitionConsumer{
		topic:                      "persistent://public/default/t-partition-3",
		partitionIdx:               3,
		queueCh:                    make(chan []*message, 10),
		messageCh:                  messageCh,
		connectedCh:                make(chan struct{}),
		closeCh:                    make(chan struct{}),
		clearQueueCh:               make(chan func(id *trackingMessageID)),
		dispatcherSeekingControlCh: make(chan struct{}),
		eventsCh:                   make(chan interface{}, 10),
		options:                    &partitionConsumerOpts{receiverQueueSize: 1000},
		maxQueueSize:               1000,
		metrics:                    internal.NewMetricsProvider(4, map[string]string{}, prometheus.NewRegistry()).GetLeveledMetrics("t"),
		decryptor:                  crypto.NewNoopDecryptor(),
		dlq:                        &dlqRouter{log: log.DefaultNopLogger()},
		log:                        log.DefaultNopLogger(),
	}
	pc._setConn(patchConn{})
	pc.availablePermits = &availablePermits{pc: pc}
	pc.ackGroupingTracker = newAckGroupingTracker(&AckGroupingOptions{MaxSize: 0}, func(MessageID) {}, nil, nil)
	return pc
}

// upstreamMessage has upstream v0.19.0's message fields; flatten reads them from a patched
// message (patch 9 moved what an entry's messages share to one messageShared).
type upstreamMessage struct {
	publishTime         time.Time
	eventTime           time.Time
	key                 string
	producerName        string
	properties          map[string]string
	topic               string
	msgID               MessageID
	payLoad             []byte
	schema              Schema
	replicationClusters []string
	replicatedFrom      string
	redeliveryCount     uint32
	schemaVersion       []byte
	schemaInfoCache     *schemaInfoCache
	orderingKey         string
	encryptionContext   *EncryptionContext
	index               *uint64
	brokerPublishTime   *time.Time
	conn                internal.Connection
}

func flatten(m *message) upstreamMessage {
	c := m.common()
	return upstreamMessage{
		publishTime: c.publishTime, eventTime: m.eventTime, key: m.key, producerName: c.producerName,
		properties: m.properties, topic: c.topic, msgID: m.msgID, payLoad: m.payLoad, schema: c.schema,
		replicationClusters: c.replicationClusters, replicatedFrom: c.replicatedFrom,
		redeliveryCount: c.redeliveryCount, schemaVersion: c.schemaVersion, schemaInfoCache: c.schemaInfoCache,
		orderingKey: m.orderingKey, encryptionContext: c.encryptionContext, index: m.index,
		brokerPublishTime: m.brokerPublishTime, conn: c.conn,
	}
}

func TestPatchedMessageFields(t *testing.T) {
	// flatten reads every field: the message's own (but the pointer to the shared ones) and
	// the shared ones are upstream's, each once.
	var fields []string
	for _, typ := range []reflect.Type{reflect.TypeFor[message](), reflect.TypeFor[messageShared]()} {
		for i := range typ.NumField() {
			if f := typ.Field(i); f.Name != "shared" {
				fields = append(fields, f.Name+" "+f.Type.String())
			}
		}
	}
	var want []string
	for i, typ := 0, reflect.TypeFor[upstreamMessage](); i < typ.NumField(); i++ {
		want = append(want, typ.Field(i).Name+" "+typ.Field(i).Type.String())
	}
	slices.Sort(fields)
	slices.Sort(want)
	if !slices.Equal(fields, want) {
		t.Errorf("message and messageShared have fields\n%v\nwant upstream's\n%v", fields, want)
	}
	// A message made without shared fields (the DLQ's and retry's copies) reads as
	// upstream's did, with those fields zero.
	m := &message{payLoad: []byte("p"), key: "k", eventTime: time.UnixMilli(5)}
	if !reflect.DeepEqual(flatten(m), upstreamMessage{payLoad: []byte("p"), key: "k", eventTime: time.UnixMilli(5)}) ||
		m.Topic() != "" || m.ProducerName() != "" || !m.PublishTime().IsZero() || m.RedeliveryCount() != 0 ||
		m.IsReplicated() || m.SchemaVersion() != nil || m.GetEncryptionContext() != nil || m.getConn() != nil {
		t.Errorf("message without shared fields: %+v", flatten(m))
	}
}

func TestPatchedMessageReceived(t *testing.T) {
	base := []patchEntry{
		{key: "device-1", event: 1767225650001, payload: "first"},
		{key: "device-22", orderingKey: "o-22", event: 1767225650002, payload: "second", properties: map[string]string{"a": "1", "b": "2"}},
		{key: "device-1", event: 1767225650003, payload: ""},
		{event: 1767225650004, payload: "no key"},
	}
	// An entry of one message, a batch with a small tracker, the most one holds, and more.
	for _, n := range []int{4, 1, 64, 65} {
		entries := make([]patchEntry, n)
		for i := range entries {
			entries[i] = base[i%len(base)]
			entries[i].event += uint64(i / len(base) * 10)
		}
		t.Run(fmt.Sprint(n), func(t *testing.T) { testPatchedMessageReceived(t, entries) })
	}
}

func testPatchedMessageReceived(t *testing.T, entries []patchEntry) {
	pc := newPatchConsumer(nil)
	cmd := &pb.CommandMessage{MessageId: &pb.MessageIdData{LedgerId: proto.Uint64(7), EntryId: proto.Uint64(11)},
		RedeliveryCount: proto.Uint32(2)}
	if err := pc.MessageReceived(cmd, internal.NewBufferWrapper(patchBatch(entries))); err != nil {
		t.Fatal(err)
	}
	msgs := <-pc.queueCh
	if len(msgs) != len(entries) {
		t.Fatalf("%d messages, want %d", len(msgs), len(entries))
	}
	var tracker *ackTracker
	for i, m := range msgs {
		e := entries[i]
		// Every field as upstream's composite literal set it (the patch stores them one by one).
		want := upstreamMessage{
			publishTime:         timeFromUnixTimestampMillis(1767225650999),
			eventTime:           timeFromUnixTimestampMillis(e.event),
			key:                 e.key,
			producerName:        "producer-1",
			properties:          e.properties,
			topic:               pc.topic,
			msgID:               m.msgID, // its fields are checked below
			payLoad:             []byte(e.payload),
			schema:              pc.options.schema,
			replicationClusters: []string{"east", "north"},
			replicatedFrom:      "west",
			redeliveryCount:     2,
			schemaVersion:       []byte{0, 3},
			schemaInfoCache:     pc.schemaInfoCache,
			orderingKey:         e.orderingKey,
			conn:                patchConn{},
		}
		if len(want.payLoad) == 0 {
			want.payLoad = m.payLoad // empty either way; reflect tells nil from empty
		}
		if got := flatten(m); !reflect.DeepEqual(got, want) {
			t.Errorf("message %d:\n%+v\nwant\n%+v", i, got, want)
		}
		if m.Key() != e.key || string(m.Payload()) != e.payload || m.EventTime().UnixMilli() != int64(e.event) ||
			m.PublishTime().UnixMilli() != 1767225650999 || m.ProducerName() != "producer-1" || m.Topic() != pc.topic {
			t.Errorf("message %d: key %q payload %q event %v publish %v producer %q topic %q, want %+v", i,
				m.Key(), m.Payload(), m.EventTime(), m.PublishTime(), m.ProducerName(), m.Topic(), e)
		}
		if m.RedeliveryCount() != 2 || m.GetReplicatedFrom() != "west" || !m.IsReplicated() ||
			!slices.Equal(m.SchemaVersion(), []byte{0, 3}) || m.getConn() != (patchConn{}) {
			t.Errorf("message %d: redelivery %d, replicated from %q, schema version %v, connection %v", i,
				m.RedeliveryCount(), m.GetReplicatedFrom(), m.SchemaVersion(), m.getConn())
		}
		if !maps.Equal(m.Properties(), e.properties) || (len(e.properties) == 0) != (m.Properties() == nil) {
			t.Errorf("message %d: properties %v, want %v (nil when there are none)", i, m.Properties(), e.properties)
		}
		if m.shared != msgs[0].shared {
			t.Errorf("message %d: shared fields at %p, want the batch's %p", i, m.shared, msgs[0].shared)
		}
		id := m.ID().(*trackingMessageID)
		if id.LedgerID() != 7 || id.EntryID() != 11 || id.BatchIdx() != int32(i) || id.BatchSize() != int32(len(entries)) ||
			id.PartitionIdx() != 3 || id.consumer != pc || id.receivedTime.IsZero() {
			t.Errorf("message %d: id %v (batch size %d, consumer set %v, received %v)", i, id, id.BatchSize(), id.consumer == pc, id.receivedTime)
		}
		if i == 0 {
			tracker = id.tracker
		} else if id.tracker != tracker {
			t.Errorf("message %d: ack tracker %p, want the batch's %p", i, id.tracker, tracker)
		}
	}
	if (tracker == nil) != (len(msgs) == 1) {
		t.Fatalf("%d messages with ack tracker %p: want one for a batch of two or more", len(msgs), tracker)
	}
	if tracker == nil {
		return
	}
	if tracker.size != uint(len(msgs)) || tracker.batchIDs.Count() != uint(len(msgs)) {
		t.Fatalf("ack tracker of size %d with %d bits set, want %d", tracker.size, tracker.batchIDs.Count(), len(msgs))
	}
	// Acknowledging every message of the batch completes its tracker, one at a time.
	for i, m := range msgs {
		done := m.ID().(*trackingMessageID).ack()
		if done != (i == len(msgs)-1) {
			t.Fatalf("ack of message %d: batch done %v", i, done)
		}
	}
}

func TestPatchedMessageReceivedLayout(t *testing.T) {
	// A message holds its own fields and a pointer to what its entry's messages share
	// (patch 9), so a batch entry is 216 bytes, not upstream's 384.
	if size := unsafe.Sizeof(receivedMessage{}); size > 216 {
		t.Errorf("batch entry of %d bytes, want at most 216", size)
	}
	// What a consumer reads of every message, its payload and its ID's ledger, entry and batch
	// index, is in the first 128 bytes of the message's entry: two cache lines, not five.
	pc := newPatchConsumer(nil)
	cmd := &pb.CommandMessage{MessageId: &pb.MessageIdData{LedgerId: proto.Uint64(7), EntryId: proto.Uint64(11)}}
	entries := []patchEntry{{key: "a", payload: "first"}, {key: "b", payload: "second"}}
	if err := pc.MessageReceived(cmd, internal.NewBufferWrapper(patchBatch(entries))); err != nil {
		t.Fatal(err)
	}
	for i, m := range <-pc.queueCh {
		id := m.ID().(*trackingMessageID)
		lo, hi := uintptr(math.MaxUint64), uintptr(0)
		for _, f := range []struct {
			p    unsafe.Pointer
			size uintptr
		}{
			{unsafe.Pointer(&m.payLoad), unsafe.Sizeof(m.payLoad)},
			{unsafe.Pointer(&m.msgID), unsafe.Sizeof(m.msgID)},
			{unsafe.Pointer(id), unsafe.Sizeof(*id)},
			{unsafe.Pointer(id.messageID), unsafe.Sizeof(*id.messageID)},
		} {
			lo, hi = min(lo, uintptr(f.p)), max(hi, uintptr(f.p)+f.size)
		}
		if hi-lo > 128 {
			t.Errorf("message %d: payload and ID fields span %d bytes, want at most 128", i, hi-lo)
		}
		// pipelined's worker prefetches the lines of a message's first 40 bytes for them.
		if end := max(unsafe.Offsetof(m.payLoad)+unsafe.Sizeof(m.payLoad), unsafe.Offsetof(m.msgID)+unsafe.Sizeof(m.msgID)); end > 40 {
			t.Errorf("message %d: payload and ID end %d bytes into the message, want at most 40", i, end)
		}
	}
}

func TestPatchedMessageReceivedAllocs(t *testing.T) {
	// A batch costs a few allocations, not two or more per message as upstream's did.
	const n = 64
	entries := make([]patchEntry, n)
	for i := range entries {
		entries[i] = patchEntry{key: fmt.Sprintf("device-%05d", i), event: uint64(1767225650000 + i), payload: "0123456789"}
	}
	frame := patchBatch(entries)
	pc := newPatchConsumer(nil)
	cmd := &pb.CommandMessage{MessageId: &pb.MessageIdData{LedgerId: proto.Uint64(7), EntryId: proto.Uint64(11)}}
	allocs := testing.AllocsPerRun(20, func() {
		if err := pc.MessageReceived(cmd, internal.NewBufferWrapper(frame)); err != nil {
			t.Fatal(err)
		}
		<-pc.queueCh
	})
	// Per batch: reader, buffer wrapper, message metadata, messages, ack tracker and its bits;
	// per message: the key's string.
	if perMsg := allocs / n; perMsg > 1.5 {
		t.Errorf("%.0f allocations for a batch of %d: %.2f per message, want at most 1.5", allocs, n, perMsg)
	}
}

func TestPatchedDispatcher(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The application's channel holds 2: some messages go by the send that does not
		// wait, the others by the select that waits for room.
		ch := make(chan ConsumerMessage, 2)
		pc := newPatchConsumer(ch)
		go pc.dispatcher()
		defer close(pc.closeCh)
		var want []string
		wantBytes := 0
		for b := 0; b < 5; b++ {
			entries := make([]patchEntry, 7)
			for i := range entries {
				entries[i] = patchEntry{key: "k", event: 1, payload: fmt.Sprintf("%d-%d", b, i)}
				want = append(want, entries[i].payload)
				wantBytes += len(entries[i].payload)
			}
			cmd := &pb.CommandMessage{MessageId: &pb.MessageIdData{LedgerId: proto.Uint64(1), EntryId: proto.Uint64(uint64(b))}}
			if err := pc.MessageReceived(cmd, internal.NewBufferWrapper(patchBatch(entries))); err != nil {
				t.Fatal(err)
			}
		}
		// The dispatcher waits for room in the full channel: the prefetched gauges
		// count what it has not handed over, lowered before it waited.
		synctest.Wait()
		inCh := string((<-ch).Payload()) // its message is handed over; the next one waits in turn
		synctest.Wait()
		first := len(want[0]) + len(want[1])
		if got := patchGauge(t, pc.metrics.PrefetchedMessages); got != float64(len(want)-3) {
			t.Errorf("prefetched messages %v while the dispatcher waits, want %d", got, len(want)-3)
		}
		if got := patchGauge(t, pc.metrics.PrefetchedBytes); got != float64(wantBytes-first-len(want[2])) {
			t.Errorf("prefetched bytes %v while the dispatcher waits, want %d", got, wantBytes-first-len(want[2]))
		}
		if inCh != want[0] {
			t.Fatalf("message 0: %q, want %q", inCh, want[0])
		}
		want = want[1:]
		for i, w := range want {
			if got := string((<-ch).Payload()); got != w {
				t.Fatalf("message %d: %q, want %q", i, got, w)
			}
		}
		synctest.Wait() // the dispatcher has handed over the last message and waits for more
		// Every message handed over gives its permit back (35 < the flow threshold of 500).
		if got := pc.availablePermits.get(); got != int32(len(want)+1) {
			t.Errorf("%d permits, want %d", got, len(want)+1)
		}
		// Everything is handed over: the gauges are back at zero.
		if got := patchGauge(t, pc.metrics.PrefetchedMessages); got != 0 {
			t.Errorf("prefetched messages %v after every message was handed over, want 0", got)
		}
		if got := patchGauge(t, pc.metrics.PrefetchedBytes); got != 0 {
			t.Errorf("prefetched bytes %v after every message was handed over, want 0", got)
		}
		select {
		case cm := <-ch:
			t.Fatalf("an extra message: %q", cm.Payload())
		default:
		}
	})
}

func patchGauge(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

func TestPatchedAckTracker(t *testing.T) {
	// A batch's tracker, as MessageReceived gets it from newEntry, starts with a bit set for
	// each message, as upstream's did; an entry of one message has none, as upstream's had.
	if _, _, tr := newEntry(1); tr != nil {
		t.Fatalf("entry of one message: ack tracker %+v, want none", tr)
	}
	for size := uint(2); size <= 130; size++ {
		upstream := bitset.New(size)
		for i := uint(0); i < size; i++ {
			upstream.Set(i)
		}
		_, _, tr := newEntry(int(size))
		if tr.size != size || !tr.batchIDs.Equal(upstream) || tr.batchIDs.Len() != size {
			t.Fatalf("size %d: tracker of size %d with bits %v (length %d), want %v", size, tr.size, tr.batchIDs, tr.batchIDs.Len(), upstream)
		}
		if got, want := tr.toAckSet(), func() []int64 {
			ws := upstream.Bytes()
			out := make([]int64, len(ws))
			for i, w := range ws {
				out[i] = int64(w)
			}
			return out
		}(); !slices.Equal(got, want) {
			t.Fatalf("size %d: ack set %v, want %v", size, got, want)
		}
		// Acknowledged one by one, the batch completes at its last message.
		for i := uint(0); i < size; i++ {
			if done := tr.ack(int(i)); done != (i == size-1) {
				t.Fatalf("size %d: ack of message %d: batch done %v", size, i, done)
			}
		}
		_, _, cum := newEntry(int(size))
		if done := cum.ackCumulative(int(size) - 1); !done {
			t.Fatalf("size %d: a cumulative ack of the last message leaves the batch open", size)
		}
	}
	// A batch of up to 64 messages costs no allocation for its tracker and what its messages
	// share, beyond the one that holds both (upstream's tracker alone took three): two with
	// the entries. An entry of one message is one allocation.
	for size, want := range map[int]float64{1: 1, 2: 2, 4: 2, 64: 2} {
		if n := testing.AllocsPerRun(100, func() { newEntry(size) }); n != want {
			t.Errorf("size %d: %v allocations, want %v", size, n, want)
		}
	}
}
