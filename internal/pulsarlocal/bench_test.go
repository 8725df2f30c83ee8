package pulsarlocal

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	pb "github.com/pipelined/pipelined/internal/pulsarpb"
)

// buildBacklog appends total messages of ~100 bytes in batches of perBatch
// over the partitions of topic.
func buildBacklog(tb testing.TB, b *Broker, topic string, partitions, total, perBatch int) {
	tb.Helper()
	if err := b.CreateTopic(topic, partitions); err != nil {
		tb.Fatal(err)
	}
	msgs := make([]Message, perBatch)
	payloads := make([]byte, perBatch*100)
	for i := range msgs {
		msgs[i].Payload = payloads[i*100 : (i+1)*100 : (i+1)*100]
		msgs[i].Key = fmt.Sprintf("device-%d", i)
	}
	for sent, batch := 0, 0; sent < total; batch++ {
		n := min(perBatch, total-sent)
		for i := 0; i < n; i++ {
			binary.BigEndian.PutUint64(msgs[i].Payload, uint64(sent+i))
			msgs[i].EventTimeMs = int64(1_700_000_000_000 + sent + i)
		}
		if err := b.AppendBatch(topic, batch%partitions, msgs[:n]); err != nil {
			tb.Fatal(err)
		}
		sent += n
	}
}

// BenchmarkLoadTopic measures LoadTopic of a 1M-message, 64-partition backlog file.
func BenchmarkLoadTopic(b *testing.B) {
	const total = 1_000_000
	src := NewTest(b, Config{})
	buildBacklog(b, src, "bench", 64, total, 1000)
	path := filepath.Join(b.TempDir(), "backlog")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := src.SaveTopic("bench", f); err != nil {
		b.Fatal(err)
	}
	f.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dst := NewTest(b, Config{})
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := dst.LoadTopic(f); err != nil {
			b.Fatal(err)
		}
		f.Close()
		dst.Close()
	}
	b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkDispatch measures the broker's dispatch rate to a raw-protocol
// consumer with unlimited permits that only counts MESSAGE frames' messages.
func BenchmarkDispatch(b *testing.B) {
	const total, perBatch = 1_000_000, 1000
	br := NewTest(b, Config{})
	buildBacklog(b, br, "dispatch", 1, total, perBatch)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		nc, err := net.Dial("tcp", br.Addr())
		if err != nil {
			b.Fatal(err)
		}
		out := connectFrame()
		out = pb.AppendFrame(out, &pb.BaseCommand{
			Type: pb.BaseCommand_SUBSCRIBE.Enum(),
			Subscribe: &pb.CommandSubscribe{
				Topic: ptr("dispatch-partition-0"), Subscription: ptr(fmt.Sprintf("s%d", i)),
				SubType: pb.CommandSubscribe_Exclusive.Enum(), ConsumerId: ptr(uint64(1)), RequestId: ptr(uint64(1)),
				InitialPosition: pb.CommandSubscribe_Earliest.Enum(),
			},
		})
		out = pb.AppendFrame(out, &pb.BaseCommand{
			Type: pb.BaseCommand_FLOW.Enum(),
			Flow: &pb.CommandFlow{ConsumerId: ptr(uint64(1)), MessagePermits: ptr(uint32(total))},
		})
		if _, err := nc.Write(out); err != nil {
			b.Fatal(err)
		}
		nc.SetReadDeadline(time.Now().Add(time.Minute))
		r := bufio.NewReaderSize(nc, 1<<20)
		var hdr [8]byte
		got := 0
		for got < total {
			if _, err := io.ReadFull(r, hdr[:]); err != nil {
				b.Fatalf("after %d messages: %v", got, err)
			}
			size, cmdSize := binary.BigEndian.Uint32(hdr[:]), binary.BigEndian.Uint32(hdr[4:])
			if cmdSize > 2 && cmdSize < size {
				got += perBatch // only MESSAGE frames carry a payload here
			}
			if _, err := r.Discard(int(size) - 4); err != nil {
				b.Fatal(err)
			}
		}
		nc.Close()
	}
	b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkAppendBatch measures building batch entries of 1000 messages.
func BenchmarkAppendBatch(b *testing.B) {
	br := NewTest(b, Config{})
	b.ReportAllocs()
	buildBacklog(b, br, "append", 64, 1000, 1000)
	b.ResetTimer()
	buildBacklog(b, br, "append", 64, 1000*b.N, 1000)
	b.ReportMetric(float64(1000*b.N)/b.Elapsed().Seconds(), "msgs/s")
}
