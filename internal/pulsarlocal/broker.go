// Package pulsarlocal is an in-memory Apache Pulsar broker speaking the Pulsar
// binary protocol, good enough for the unmodified pulsar-client-go producer and
// consumer. It is test and development infrastructure: tests start one with
// NewTest, the pulsar-local command serves one on a fixed port.
//
//	b := pulsarlocal.NewTest(t, pulsarlocal.Config{DefaultPartitions: 64})
//	client, _ := pulsar.NewClient(pulsar.ClientOptions{URL: b.URL()})
//
// Supported: CONNECT, PING/PONG, PARTITIONED_METADATA, LOOKUP (always this
// broker), GET_TOPICS_OF_NAMESPACE, PRODUCER, SEND (entries stored exactly as
// sent), SUBSCRIBE (Exclusive, Failover, Shared; Key_Shared is served as
// Shared, without key affinity), FLOW (permits count messages), ACK
// (individual, cumulative, batch index ack sets), REDELIVER_UNACKNOWLEDGED_MESSAGES,
// GET_LAST_MESSAGE_ID, SEEK (message ID or publish time), UNSUBSCRIBE,
// CLOSE_PRODUCER, CLOSE_CONSUMER, GET_SCHEMA, GET_OR_CREATE_SCHEMA. Any other
// request is answered with an ERROR; a malformed frame closes the connection.
// Not supported: authentication, TLS, transactions, chunking-aware dispatch,
// retention limits (everything stays in memory), redelivery counts.
//
// Topics are created on first use. A partitioned topic is one topic per
// partition, named "<topic>-partition-<i>". Every entry of every topic has
// ledger ID 1 and its index as entry ID.
//
// # Locking
//
// State is guarded by three kinds of mutexes, always taken in this order:
//
//  1. Broker.mu guards the topic tables, schemas, the connection set and the
//     fault-injection settings.
//  2. topic.mu guards one (partition) topic: its entries and its subscriptions
//     with their consumers, permits and acknowledgements. Dispatch runs under it.
//  3. conn.outMu guards one connection's outgoing buffer. Dispatch appends
//     ready frames to it; the connection's writer goroutine swaps it out and
//     writes many frames per syscall.
//
// Each connection has one reader goroutine that handles its commands in order
// and owns the connection's producer and consumer tables, so they need no lock.
package pulsarlocal

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// Config configures a Broker.
type Config struct {
	// Addr is the TCP listen address. Default "127.0.0.1:0".
	Addr string
	// DefaultPartitions is the partition count of a topic created on first use
	// by a PARTITIONED_METADATA lookup of an unknown topic; 0 creates a
	// non-partitioned topic. Default 0.
	DefaultPartitions int
	// MaxMessageSize is advertised to clients in CONNECTED. Default 5 MiB.
	MaxMessageSize int
	// Logf logs connection errors when set. Default: no logging.
	Logf func(format string, args ...any)
}

// Broker is an in-memory Pulsar broker. Create it with New, serve with Run or
// Start, stop with Close.
type Broker struct {
	cfg Config
	ln  net.Listener
	url string

	mu          sync.Mutex
	topics      map[string]*topic // by full partition (or non-partitioned) topic name
	partitioned map[string]int    // full base topic name -> partitions
	schemas     map[string]*schemaEntry
	conns       map[*conn]struct{}
	refuse      bool
	delay       time.Duration
	nextName    int

	closeOnce sync.Once
	closed    chan struct{}
	wg        sync.WaitGroup // accept loop and connection goroutines
	startOnce sync.Once
}

// New listens on cfg.Addr; the broker serves after Run or Start.
func New(cfg Config) (*Broker, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = 5 * 1024 * 1024
	}
	if cfg.DefaultPartitions < 0 {
		return nil, fmt.Errorf("default partitions %d: must not be negative", cfg.DefaultPartitions)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %q: %w", cfg.Addr, err)
	}
	return &Broker{
		cfg:         cfg,
		ln:          ln,
		url:         "pulsar://" + ln.Addr().String(),
		topics:      make(map[string]*topic),
		partitioned: make(map[string]int),
		schemas:     make(map[string]*schemaEntry),
		conns:       make(map[*conn]struct{}),
		closed:      make(chan struct{}),
	}, nil
}

// NewTest starts a broker for a test and closes it in t.Cleanup.
func NewTest(t testing.TB, cfg Config) *Broker {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("pulsarlocal: %v", err)
	}
	b.Start()
	t.Cleanup(func() { b.Close() })
	return b
}

// Start serves in background goroutines until Close. Calling it more than
// once, or together with Run, has no further effect.
func (b *Broker) Start() {
	b.startOnce.Do(func() {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.acceptLoop()
		}()
	})
}

// Run serves until ctx is done or Close is called, then closes the broker.
func (b *Broker) Run(ctx context.Context) error {
	b.Start()
	select {
	case <-ctx.Done():
	case <-b.closed:
	}
	return b.Close()
}

// Addr returns the listen address, host:port.
func (b *Broker) Addr() string { return b.ln.Addr().String() }

// URL returns the service URL for pulsar.ClientOptions, "pulsar://host:port".
func (b *Broker) URL() string { return b.url }

// Close stops listening, closes every connection and waits for their
// goroutines. It is safe to call more than once.
func (b *Broker) Close() error {
	var err error
	b.closeOnce.Do(func() {
		close(b.closed)
		err = b.ln.Close()
		b.DropConnections()
		b.wg.Wait()
	})
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (b *Broker) acceptLoop() {
	for {
		nc, err := b.ln.Accept()
		if err != nil {
			select {
			case <-b.closed:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			b.logf("accept: %v", err)
			return
		}
		b.mu.Lock()
		closing := false
		select {
		case <-b.closed:
			closing = true // Close has taken or is taking its snapshot of b.conns
		default:
		}
		if b.refuse || closing {
			b.mu.Unlock()
			nc.Close()
			continue
		}
		c := newConn(b, nc)
		b.conns[c] = struct{}{}
		b.wg.Add(2)
		b.mu.Unlock()
		go func() {
			defer b.wg.Done()
			c.writeLoop()
		}()
		go func() {
			defer b.wg.Done()
			c.serve()
		}()
	}
}

func (b *Broker) logf(format string, args ...any) {
	if b.cfg.Logf != nil {
		b.cfg.Logf(format, args...)
	}
}

// DropConnections closes every client connection, as a broker restart would.
// Clients reconnect on their own.
func (b *Broker) DropConnections() {
	b.mu.Lock()
	cs := make([]*conn, 0, len(b.conns))
	for c := range b.conns {
		cs = append(cs, c)
	}
	b.mu.Unlock()
	for _, c := range cs {
		c.close()
	}
}

// RefuseConnections makes the broker close new connections right after
// accepting them while refuse is true.
func (b *Broker) RefuseConnections(refuse bool) {
	b.mu.Lock()
	b.refuse = refuse
	b.mu.Unlock()
}

// SetResponseDelay delays the handling of every later request (all commands
// but PING, PONG, FLOW and ACK) by d; 0 turns the delay off.
func (b *Broker) SetResponseDelay(d time.Duration) {
	b.mu.Lock()
	b.delay = d
	b.mu.Unlock()
}

func (b *Broker) responseDelay() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.delay
}

const (
	topicPrefix     = "persistent://"
	defaultTenantNS = "public/default/"
	partitionSuffix = "-partition-"
)

// fullTopicName turns the short forms "x" and "tenant/ns/x" into
// "persistent://public/default/x" and "persistent://tenant/ns/x".
func fullTopicName(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty topic name")
	}
	if strings.Contains(name, "://") {
		if !strings.HasPrefix(name, topicPrefix) && !strings.HasPrefix(name, "non-persistent://") {
			return "", fmt.Errorf("topic %q: unknown domain", name)
		}
		return name, nil
	}
	switch strings.Count(name, "/") {
	case 0:
		return topicPrefix + defaultTenantNS + name, nil
	case 2:
		return topicPrefix + name, nil
	}
	return "", fmt.Errorf("topic %q: want name, tenant/namespace/name or domain://tenant/namespace/name", name)
}

// splitPartition splits "base-partition-3" into "base" and 3; i is -1 when
// name has no partition suffix.
func splitPartition(name string) (base string, i int) {
	k := strings.LastIndex(name, partitionSuffix)
	if k < 0 {
		return name, -1
	}
	n := 0
	digits := name[k+len(partitionSuffix):]
	if digits == "" || len(digits) > 9 {
		return name, -1
	}
	for _, ch := range digits {
		if ch < '0' || ch > '9' {
			return name, -1
		}
		n = n*10 + int(ch-'0')
	}
	return name[:k], n
}

func partitionName(base string, i int) string {
	return fmt.Sprintf("%s%s%d", base, partitionSuffix, i)
}

// CreateTopic creates topic name with the given number of partitions
// (0: non-partitioned). Creating an existing topic with the same partition
// count does nothing; a different count is an error.
func (b *Broker) CreateTopic(name string, partitions int) error {
	full, err := fullTopicName(name)
	if err != nil {
		return err
	}
	if partitions < 0 {
		return fmt.Errorf("topic %q: partitions %d: must not be negative", name, partitions)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.createTopicLocked(full, partitions)
}

func (b *Broker) createTopicLocked(full string, partitions int) error {
	if n, ok := b.partitioned[full]; ok {
		if n != partitions {
			return fmt.Errorf("topic %q exists with %d partitions, not %d", full, n, partitions)
		}
		return nil
	}
	if _, ok := b.topics[full]; ok {
		if partitions != 0 {
			return fmt.Errorf("topic %q exists non-partitioned, not with %d partitions", full, partitions)
		}
		return nil
	}
	if partitions == 0 {
		b.topics[full] = newTopic(full, -1)
		return nil
	}
	b.partitioned[full] = partitions
	for i := 0; i < partitions; i++ {
		p := partitionName(full, i)
		if _, ok := b.topics[p]; !ok {
			b.topics[p] = newTopic(p, i)
		}
	}
	return nil
}

// getTopic returns the (partition) topic with full name, creating a
// non-partitioned topic (or a missing partition of a known partitioned topic)
// on first use. A partitioned topic's base name is an error.
func (b *Broker) getTopic(full string) (*topic, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t, ok := b.topics[full]; ok {
		return t, nil
	}
	if n, ok := b.partitioned[full]; ok {
		return nil, fmt.Errorf("topic %q is partitioned (%d partitions): use a partition", full, n)
	}
	base, i := splitPartition(full)
	if n, ok := b.partitioned[base]; i >= 0 && ok && i >= n {
		return nil, fmt.Errorf("topic %q: partition %d out of %d", full, i, n)
	}
	t := newTopic(full, i)
	b.topics[full] = t
	return t, nil
}

// lookupTopic returns an existing (partition) topic by user-facing name and
// partition (-1 for a non-partitioned topic).
func (b *Broker) lookupTopic(name string, partition int) (*topic, error) {
	full, err := fullTopicName(name)
	if err != nil {
		return nil, err
	}
	if partition >= 0 {
		full = partitionName(full, partition)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.topics[full]
	if !ok {
		return nil, fmt.Errorf("topic %q: not found", full)
	}
	return t, nil
}

// topicPartitions returns the topics making up name: its partitions in order
// or the one non-partitioned topic.
func (b *Broker) topicPartitions(name string) ([]*topic, error) {
	full, err := fullTopicName(name)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if n, ok := b.partitioned[full]; ok {
		ts := make([]*topic, n)
		for i := range ts {
			ts[i] = b.topics[partitionName(full, i)]
		}
		return ts, nil
	}
	if t, ok := b.topics[full]; ok {
		return []*topic{t}, nil
	}
	return nil, fmt.Errorf("topic %q: not found", full)
}
