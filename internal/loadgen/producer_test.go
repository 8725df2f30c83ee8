package loadgen

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/hamba/avro/v2"

	"github.com/pipelined/pipelined/agg"
	"github.com/pipelined/pipelined/internal/avrodec"
	"github.com/pipelined/pipelined/internal/pulsarlocal"
	"github.com/pipelined/pipelined/internal/schemas"
)

// received is what a consumer read back: the decoded reading and the message's metadata.
type received struct {
	key       string
	eventTime int64
	reading   agg.Reading
}

// consumeAll reads n messages of topic from the beginning, failing after a deadline.
func consumeAll(t *testing.T, url, topic, schema string, n int) []received {
	t.Helper()
	client, err := pulsar.NewClient(pulsar.ClientOptions{URL: url, Logger: plog.DefaultNopLogger()})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	defer client.Close()
	c, err := client.Subscribe(pulsar.ConsumerOptions{
		Topic:                       topic,
		SubscriptionName:            "check",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
		ReceiverQueueSize:           1000,
	})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer c.Close()
	dec, err := avrodec.New(avro.MustParse(schema), avrodec.Fields{
		Key: "sensorId", Time: "timestamp", Status: "status",
		Measures: []string{"temperature", "humidity", "pressure", "batteryLevel"},
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]received, 0, n)
	deadline := time.After(30 * time.Second)
	for len(out) < n {
		select {
		case cm := <-c.Chan():
			m := cm.Message
			if len(m.SchemaVersion()) == 0 {
				t.Fatalf("message %v carries no schema version", m.ID())
			}
			var r agg.Reading
			if err := dec.Decode(m.Payload(), &r); err != nil {
				t.Fatalf("message %v: %v", m.ID(), err)
			}
			out = append(out, received{key: m.Key(), eventTime: m.EventTime().UnixMilli(), reading: r})
		case <-deadline:
			t.Fatalf("received %d of %d messages", len(out), n)
		}
	}
	return out
}

// TestProducer sends through a local Pulsar and reads everything back: every message carries
// the schema version, the device id as key, the event time, and exactly a sample OnSend saw.
func TestProducer(t *testing.T) {
	for _, padded := range []bool{false, true} {
		t.Run("padded="+strconv.FormatBool(padded), func(t *testing.T) {
			b := pulsarlocal.NewTest(t, pulsarlocal.Config{DefaultPartitions: 4})
			const count = 5000
			const base = int64(1_764_000_000_000)
			var tick atomic.Int64
			var mu sync.Mutex
			sent := make(map[received]int)
			p, err := NewProducer(ProducerConfig{
				URL:     b.URL(),
				Topic:   "persistent://public/default/loadgen-test",
				Count:   count,
				Devices: 50,
				Padded:  padded,
				// Event times spread over five minutes.
				Clock: func() int64 { return base + tick.Add(1)*5*60_000/count },
				OnSend: func(s Sample) {
					r := agg.Reading{Key: int64(s.SensorID), TimeMs: s.Timestamp, Status: s.Status,
						Values: [agg.MaxMeasures]float64{s.Temperature, s.Humidity, s.Pressure, s.BatteryLevel}}
					mu.Lock()
					sent[received{strconv.Itoa(int(s.SensorID)), s.Timestamp, r}]++
					mu.Unlock()
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			st, err := p.Run(context.Background())
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if st.Messages != count {
				t.Fatalf("Run sent %d messages, want %d", st.Messages, count)
			}
			if n, err := b.MessageCount("persistent://public/default/loadgen-test", -1); err != nil || n != count {
				t.Fatalf("broker holds %d messages (%v), want %d", n, err, count)
			}
			schema := schemas.SensorData
			if padded {
				schema = schemas.SensorDataPadded
			}
			got := consumeAll(t, b.URL(), "persistent://public/default/loadgen-test", schema, count)
			for _, r := range got {
				if sent[r] == 0 {
					t.Fatalf("received %+v, which OnSend did not see (or saw fewer times)", r)
				}
				sent[r]--
			}
			if last := base + 5*60_000; got[0].eventTime < base || got[0].eventTime > last {
				t.Fatalf("event time %d outside the clock's range", got[0].eventTime)
			}
			if perMsg := st.Bytes / st.Messages; (padded && perMsg < 270) || (!padded && perMsg > 44) {
				t.Fatalf("%d bytes per message", perMsg)
			}
		})
	}
}

// TestProducerRate checks the rate limit: 600 messages at 2,000/s cannot take less than 0.3 s.
func TestProducerRate(t *testing.T) {
	b := pulsarlocal.NewTest(t, pulsarlocal.Config{DefaultPartitions: 2})
	p, err := NewProducer(ProducerConfig{URL: b.URL(), Topic: "rate", Count: 600, Rate: 2000})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	start := time.Now()
	st, err := p.Run(context.Background())
	if err != nil || st.Messages != 600 {
		t.Fatalf("Run = %+v, %v; want 600 messages", st, err)
	}
	// The first message of each producer goes at once: 149 intervals of 2 ms each.
	if d := time.Since(start); d < 290*time.Millisecond {
		t.Fatalf("600 messages at 2,000/s took %v", d)
	}
}

// TestProducerUntilCancelled runs without a count until the context is cancelled.
func TestProducerUntilCancelled(t *testing.T) {
	b := pulsarlocal.NewTest(t, pulsarlocal.Config{})
	var seen atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	p, err := NewProducer(ProducerConfig{URL: b.URL(), Topic: "forever", Producers: 2,
		OnSend: func(Sample) {
			if seen.Add(1) == 1000 {
				cancel()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	st, err := p.Run(ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st.Messages < 1000 || st.Messages != seen.Load() {
		t.Fatalf("Run counted %d messages, OnSend saw %d, want the same and at least 1000", st.Messages, seen.Load())
	}
}

// TestProducerSendFailure checks a send failure is returned: the broker goes away mid-run.
func TestProducerSendFailure(t *testing.T) {
	b := pulsarlocal.NewTest(t, pulsarlocal.Config{})
	p, err := NewProducer(ProducerConfig{URL: b.URL(), Topic: "fail", Producers: 1, SendTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	b.RefuseConnections(true)
	b.DropConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := p.Run(ctx); err == nil || ctx.Err() != nil {
		t.Fatalf("Run = %v (context %v), want a send failure before the deadline", err, ctx.Err())
	}
	p.Close()
	p.Close() // safe twice
}

func TestNewProducerErrors(t *testing.T) {
	for _, cfg := range []ProducerConfig{
		{},
		{URL: "pulsar://127.0.0.1:1", Rate: -1},
		{URL: "pulsar://127.0.0.1:1", Count: -1},
	} {
		if p, err := NewProducer(cfg); err == nil {
			p.Close()
			t.Errorf("NewProducer(%+v) succeeded", cfg)
		}
	}
}

// BenchmarkProducer measures sending through a local Pulsar, the client's cost included.
func BenchmarkProducer(b *testing.B) {
	for _, padded := range []bool{false, true} {
		b.Run("padded="+strconv.FormatBool(padded), func(b *testing.B) {
			br := pulsarlocal.NewTest(b, pulsarlocal.Config{DefaultPartitions: 4})
			p, err := NewProducer(ProducerConfig{URL: br.URL(), Topic: "bench", Count: int64(b.N), Padded: padded})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			b.ResetTimer()
			st, err := p.Run(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(st.Bytes / max(st.Messages, 1))
			b.ReportMetric(float64(st.Messages)/b.Elapsed().Seconds(), "msg/s")
		})
	}
}
