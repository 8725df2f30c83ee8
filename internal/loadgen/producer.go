package loadgen

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
)

// DefaultTopic is the reference's topic.
const DefaultTopic = "persistent://public/default/iot-sensor-data"

// ProducerConfig configures a Producer.
type ProducerConfig struct {
	URL         string        // Pulsar service URL, e.g. pulsar://127.0.0.1:6650; required
	Topic       string        // default DefaultTopic
	Rate        int           // messages per second over all producers; default 0: as fast as possible
	Count       int64         // messages to send over all producers; default 0: until the context is done
	Devices     int           // device count; default DefaultDevices
	Padded      bool          // send SensorDataPadded (about 300 bytes) instead of SensorData; default false
	Producers   int           // parallel Pulsar producers, each with its own goroutine and Generator; default 4, like the reference
	MaxInFlight int           // messages sent and not yet acknowledged, per producer; default 1000
	Seed        uint64        // producer i generates with seed Seed+i; default 0
	SendTimeout time.Duration // how long a message may wait for its receipt before the send fails; default 30s
	Clock       func() int64  // event time of the next message, epoch milliseconds; default the wall clock
	// OnSend is called for each message the broker acknowledged, with what it carried; default
	// none. It is called from the Pulsar client's goroutines, concurrently for different
	// partitions and producers, so it must be safe for concurrent use; Run returns after the
	// last call.
	OnSend func(s Sample)
	Logger *slog.Logger // the Pulsar client's log; default none
}

// Stats counts what a Producer sent and the broker acknowledged.
type Stats struct {
	Messages int64 // messages
	Bytes    int64 // Avro payload bytes, before compression
}

// Producer sends generated readings to a Pulsar topic the way the reference's load generator
// does: message key the device id (so each device goes to one partition), event time set,
// batching with a 1 ms delay, LZ4 compression, and the Avro schema registered with the topic.
type Producer struct {
	cfg       ProducerConfig
	client    pulsar.Client
	producers []pulsar.Producer
	closeOnce sync.Once
}

// NewProducer connects to cfg.URL and creates the producers, registering the Avro schema.
func NewProducer(cfg ProducerConfig) (*Producer, error) {
	if cfg.URL == "" {
		return nil, errors.New("loadgen: URL is required")
	}
	if cfg.Topic == "" {
		cfg.Topic = DefaultTopic
	}
	if cfg.Rate < 0 || cfg.Count < 0 || cfg.Devices < 0 || cfg.Producers < 0 || cfg.MaxInFlight < 0 {
		return nil, fmt.Errorf("loadgen: negative Rate %d, Count %d, Devices %d, Producers %d or MaxInFlight %d",
			cfg.Rate, cfg.Count, cfg.Devices, cfg.Producers, cfg.MaxInFlight)
	}
	if cfg.Devices == 0 {
		cfg.Devices = DefaultDevices
	}
	if cfg.Producers == 0 {
		cfg.Producers = 4
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 1000
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = 30 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = func() int64 { return time.Now().UnixMilli() }
	}
	logger := plog.DefaultNopLogger()
	if cfg.Logger != nil {
		logger = plog.NewLoggerWithSlog(cfg.Logger)
	}
	client, err := pulsar.NewClient(pulsar.ClientOptions{
		URL:                     cfg.URL,
		Logger:                  logger,
		MaxConnectionsPerBroker: cfg.Producers,
	})
	if err != nil {
		return nil, fmt.Errorf("loadgen: pulsar client for %q: %w", cfg.URL, err)
	}
	p := &Producer{cfg: cfg, client: client}
	// A pre-encoded Payload is sent unchanged, while ProducerOptions.Schema registers the
	// schema with the topic (pulsar-client-go encodes with the schema only a message's Value).
	schema, err := pulsar.NewAvroSchemaWithValidation(New(Config{Padded: cfg.Padded}).Schema(), nil)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("loadgen: avro schema: %w", err)
	}
	for i := range cfg.Producers {
		prod, err := client.CreateProducer(pulsar.ProducerOptions{
			Topic:                   cfg.Topic,
			Schema:                  schema,
			BatchingMaxPublishDelay: time.Millisecond,
			CompressionType:         pulsar.LZ4,
			MaxPendingMessages:      cfg.MaxInFlight,
			SendTimeout:             cfg.SendTimeout,
		})
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("loadgen: producer %d on %q: %w", i, cfg.Topic, err)
		}
		p.producers = append(p.producers, prod)
	}
	return p, nil
}

// slot is one message in flight: its buffer and message are reused once acknowledged.
type slot struct {
	buf    []byte
	msg    pulsar.ProducerMessage
	sample Sample
	done   func(pulsar.MessageID, *pulsar.ProducerMessage, error) // SendAsync's callback
}

// Run sends until cfg.Count messages are acknowledged or ctx is done, waits for the receipts of
// every message sent, and returns what was acknowledged. It fails on the first send failure,
// and when ctx ends before cfg.Count messages were sent. Call it once.
func (p *Producer) Run(ctx context.Context) (Stats, error) {
	var (
		msgs, bytes atomic.Int64
		errOnce     sync.Once
		firstErr    error
		failed      atomic.Bool
		wg          sync.WaitGroup
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		failed.Store(true)
	}
	n := int64(len(p.producers))
	for i, prod := range p.producers {
		count := int64(0) // 0: no limit
		if p.cfg.Count > 0 {
			if count = p.cfg.Count / n; int64(i) < p.cfg.Count%n {
				count++
			}
			if count == 0 {
				continue
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			gen := New(Config{Devices: p.cfg.Devices, Seed: p.cfg.Seed + uint64(i), Padded: p.cfg.Padded})
			free := make(chan *slot, p.cfg.MaxInFlight)
			for range p.cfg.MaxInFlight {
				s := &slot{}
				s.done = func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
					if err != nil {
						fail(fmt.Errorf("loadgen: send to %q: %w", p.cfg.Topic, err))
					} else {
						msgs.Add(1)
						bytes.Add(int64(len(s.buf)))
						if p.cfg.OnSend != nil {
							p.cfg.OnSend(s.sample)
						}
					}
					free <- s
				}
				free <- s
			}
			var interval time.Duration
			if p.cfg.Rate > 0 {
				interval = time.Duration(float64(time.Second) * float64(n) / float64(p.cfg.Rate))
			}
			start := time.Now()
			timer := time.NewTimer(0)
			defer timer.Stop()
		send:
			for sent := int64(0); count == 0 || sent < count; sent++ {
				if interval > 0 {
					// Pace by the schedule, sleeping only when a millisecond or more ahead of it.
					if d := time.Until(start.Add(time.Duration(sent) * interval)); d >= time.Millisecond {
						timer.Reset(d)
						select {
						case <-ctx.Done():
							break send
						case <-timer.C:
						}
					}
				}
				var s *slot
				select {
				case <-ctx.Done():
					break send
				case s = <-free:
				}
				if failed.Load() {
					free <- s
					break
				}
				id, buf := gen.Next(p.cfg.Clock(), s.buf[:0])
				s.buf, s.sample = buf, gen.Last()
				s.msg = pulsar.ProducerMessage{
					Payload:   buf,
					Key:       strconv.FormatInt(int64(id), 10),
					EventTime: time.UnixMilli(s.sample.Timestamp),
				}
				// Not ctx: a message handed over is waited for, not abandoned.
				prod.SendAsync(context.Background(), &s.msg, s.done)
			}
			if err := prod.FlushWithCtx(context.Background()); err != nil {
				fail(fmt.Errorf("loadgen: flush %q: %w", p.cfg.Topic, err))
			}
			for range p.cfg.MaxInFlight { // every receipt
				<-free
			}
		}()
	}
	wg.Wait()
	st := Stats{Messages: msgs.Load(), Bytes: bytes.Load()}
	if firstErr != nil {
		return st, firstErr
	}
	if p.cfg.Count > 0 && st.Messages < p.cfg.Count {
		return st, fmt.Errorf("loadgen: sent %d of %d messages: %w", st.Messages, p.cfg.Count, context.Cause(ctx))
	}
	return st, nil
}

// Close closes the producers and the client. It is safe to call twice.
func (p *Producer) Close() {
	p.closeOnce.Do(func() {
		for _, prod := range p.producers {
			prod.Close()
		}
		p.client.Close()
	})
}
