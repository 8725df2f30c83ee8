package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"

	"github.com/pipelined/pipelined/internal/avrodec"
	"github.com/pipelined/pipelined/internal/registry"
)

// Pipeline consumes the topic, aggregates each partition's readings into windows and writes
// them to ClickHouse, acknowledging a message only once everything it fed is written.
type Pipeline struct {
	cfg    Config
	log    *slog.Logger
	m      *Metrics
	client pulsar.Client
	writer *Writer
	dlq    *dlqPublisher

	ready     chan struct{}
	readyOnce sync.Once
	closeOnce sync.Once
	consumers []pulsar.Consumer
	mu        sync.Mutex
}

// New checks cfg and prepares a pipeline; Run connects.
func New(cfg Config, log *slog.Logger) (*Pipeline, error) {
	if p := cfg.validate(); len(p) > 0 {
		return nil, &ConfigError{Problems: p}
	}
	if cfg.Limits.MemoryLimitMB > 0 {
		debug.SetMemoryLimit(int64(cfg.Limits.MemoryLimitMB) << 20)
	}
	m := newMetrics(cfg.Limits.MaxPendingRows, append(avrodec.Reasons(), ReasonFutureTime))
	p := &Pipeline{cfg: cfg, log: log, m: m, ready: make(chan struct{})}
	opts := pulsar.ClientOptions{
		URL:                        cfg.Pulsar.URL,
		ConnectionTimeout:          cfg.Pulsar.ConnectionTimeout,
		OperationTimeout:           cfg.Pulsar.OperationTimeout,
		MaxConnectionsPerBroker:    cfg.Pulsar.ConnectionsPerBroker,
		TLSTrustCertsFilePath:      cfg.Pulsar.TLSTrustCertsFile,
		TLSAllowInsecureConnection: cfg.Pulsar.TLSAllowInsecure,
		Logger:                     plog.NewLoggerWithSlog(log.With("component", "pulsar-client")),
	}
	switch {
	case cfg.Pulsar.Token != "":
		opts.Authentication = pulsar.NewAuthenticationToken(string(cfg.Pulsar.Token))
	case cfg.Pulsar.TLSCertFile != "":
		opts.Authentication = pulsar.NewAuthenticationTLS(cfg.Pulsar.TLSCertFile, cfg.Pulsar.TLSKeyFile)
	}
	c, err := pulsar.NewClient(opts)
	if err != nil {
		return nil, fmt.Errorf("pulsar client for %q: %w", cfg.Pulsar.URL, err)
	}
	p.client = c
	p.writer = NewWriter(&p.cfg, log.With("component", "clickhouse"), m)
	return p, nil
}

// registrySchema returns the topic's Avro schema from Pulsar's schema registry when
// schema.from_registry is set, else "" (the configured or built-in schema).
func (p *Pipeline) registrySchema(ctx context.Context) (string, error) {
	pc := &p.cfg.Pulsar
	if !p.cfg.Schema.FromRegistry {
		return "", nil
	}
	tc, err := registry.LoadTLS(pc.TLSTrustCertsFile, pc.TLSCertFile, pc.TLSKeyFile, pc.TLSAllowInsecure)
	if err != nil {
		return "", fmt.Errorf("pulsar TLS: %w", err)
	}
	o := registry.Options{URL: pc.URL, Token: string(pc.Token), TLSConfig: tc, Timeout: pc.OperationTimeout}
	def, typ, err := registry.Schema(ctx, o, pc.Topic)
	if err == nil && typ != "AVRO" {
		err = fmt.Errorf("topic %q has a %s schema in the registry, want AVRO", pc.Topic, typ)
	}
	return def, err
}

// Metrics returns the pipeline's metrics.
func (p *Pipeline) Metrics() *Metrics { return p.m }

// Ready is closed once every partition is subscribed and consuming.
func (p *Pipeline) Ready() <-chan struct{} { return p.ready }

// Run consumes until ctx ends, then stops gracefully within shutdown_timeout: it stops taking
// messages, writes every open window as partial rows, acknowledges what is written and returns.
func (p *Pipeline) Run(ctx context.Context) error {
	stopCtx, cancelStopCause := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelStopCause(nil)
	context.AfterFunc(ctx, func() {
		t := time.AfterFunc(p.cfg.ShutdownTimeout, func() { cancelStopCause(ErrShutdownTimeout) })
		context.AfterFunc(stopCtx, func() { t.Stop() })
	})

	if err := p.writer.Setup(ctx); err != nil {
		return fmt.Errorf("clickhouse setup: %w", err)
	}
	p.writer.Start(stopCtx, ctx.Done())
	defer p.writer.Close()

	def, err := p.registrySchema(ctx)
	if err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	if _, err := p.cfg.Decoder(def); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	if dl := p.cfg.Pulsar.DeadLetter(); dl != "" {
		prod, err := p.client.CreateProducer(pulsar.ProducerOptions{Topic: dl, Name: ""})
		if err != nil {
			return fmt.Errorf("dead-letter producer for %q: %w", dl, err)
		}
		defer prod.Close()
		p.dlq = &dlqPublisher{prod: prod, topic: p.cfg.Pulsar.Topic, m: p.m}
	} else {
		p.dlq = &dlqPublisher{topic: p.cfg.Pulsar.Topic, m: p.m}
	}

	parts, err := p.client.TopicPartitions(p.cfg.Pulsar.Topic)
	if err != nil {
		return fmt.Errorf("partitions of %q: %w", p.cfg.Pulsar.Topic, err)
	}
	reader := newProgressReader(p.writer)
	defer reader.close()

	// Partitions are subscribed a few at a time, and each partition's worker starts as soon as
	// its consumer exists: with a large backlog the broker starts sending a partition's messages
	// at once, and one by one the 64 subscriptions would wait behind them for seconds, while
	// nothing is consumed.
	workCtx, cancelWork := context.WithCancel(ctx)
	defer cancelWork()
	var (
		subscribed sync.WaitGroup
		subMu      sync.Mutex
		subErrs    []error
		sem        = make(chan struct{}, subscribeParallelism)
		errs       = make(chan error, len(parts))
	)
	workers := make([]*worker, len(parts))
	subs := make([]pulsar.ConsumerOptions, len(parts))
	for i, topic := range parts {
		ch := make(chan pulsar.ConsumerMessage, p.cfg.Pulsar.MessageChannelSize)
		d, err := p.cfg.Decoder(def) // one per worker: a Decoder is not shared
		if err != nil {
			return err
		}
		wk := newWorker(partitionIndex(topic, i), &p.cfg, source{ch: ch}, d, reader, p.dlq, p.m, p.log)
		opts := pulsar.ConsumerOptions{
			Topic:                       topic,
			SubscriptionName:            p.cfg.Pulsar.Subscription,
			Type:                        pulsar.Failover,
			SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
			MessageChannel:              ch,
			ReceiverQueueSize:           p.cfg.Pulsar.ReceiverQueueSize,
			EventListener:               wk,
		}
		if p.cfg.Pulsar.SubscriptionType == "exclusive" {
			opts.Type = pulsar.Exclusive
		}
		if p.cfg.Pulsar.InitialPosition == "latest" {
			opts.SubscriptionInitialPosition = pulsar.SubscriptionPositionLatest
		}
		workers[i], subs[i] = wk, opts
	}
	for i, wk := range workers {
		opts, topic := subs[i], parts[i]
		subscribed.Add(1)
		go func() {
			sem <- struct{}{}
			cons, err := p.client.Subscribe(opts)
			<-sem
			if err != nil {
				subMu.Lock()
				subErrs = append(subErrs, fmt.Errorf("subscribe %q to %q: %w", p.cfg.Pulsar.Subscription, topic, err))
				subMu.Unlock()
				cancelWork() // the partitions already consuming stop gracefully
				subscribed.Done()
				errs <- nil
				return
			}
			p.mu.Lock()
			p.consumers = append(p.consumers, cons)
			p.mu.Unlock()
			wk.src.consumer = cons
			subscribed.Done()
			errs <- wk.run(workCtx, stopCtx)
		}()
	}
	readyDone := make(chan struct{})
	go func() {
		defer close(readyDone)
		subscribed.Wait()
		subMu.Lock()
		failed := len(subErrs) > 0
		subMu.Unlock()
		if failed || workCtx.Err() != nil {
			return
		}
		p.log.Info("consuming", "topic", p.cfg.Pulsar.Topic, "partitions", len(parts), "subscription", p.cfg.Pulsar.Subscription,
			"type", p.cfg.Pulsar.SubscriptionType, "window", p.cfg.Window.Size, "time", p.cfg.Window.Time)
		p.readyOnce.Do(func() { p.m.ready.Store(true); close(p.ready) })
	}()

	var all []error
	for range parts {
		if err := <-errs; err != nil {
			all = append(all, err)
			// A worker that failed outside a shutdown stops the process at once: the others
			// stop too, without the graceful flush (what is unwritten is replayed next time),
			// and say why (the cause is not a cancellation, so the exit code says failure).
			cancelStopCause(err)
			cancelWork()
		}
	}
	<-readyDone
	all = append(subErrs, all...)
	p.m.ready.Store(false)
	return errors.Join(all...)
}

// ErrShutdownTimeout is why a graceful stop ended before everything was written and
// acknowledged: shutdown_timeout passed. What was not written is replayed by the next run.
var ErrShutdownTimeout = errors.New("shutdown_timeout reached")

// subscribeParallelism is how many partitions are subscribed at the same time.
const subscribeParallelism = 8

// partitionIndex parses the index from "<topic>-partition-<i>", or returns i.
func partitionIndex(topic string, i int) int {
	const sep = "-partition-"
	for j := len(topic) - len(sep); j >= 0; j-- {
		if topic[j:j+len(sep)] == sep {
			if n, err := strconv.Atoi(topic[j+len(sep):]); err == nil {
				return n
			}
			break
		}
	}
	return i
}

// closeTimeout bounds Close: a broker that does not answer CLOSE_CONSUMER must not hold the
// process past its stop timeout. Everything written is acknowledged before Close.
const closeTimeout = 10 * time.Second

// Close releases the Pulsar consumers (in parallel, bounded by closeTimeout), the writer and the
// client. Safe to call twice.
func (p *Pipeline) Close() error {
	var err error
	p.closeOnce.Do(func() {
		p.mu.Lock()
		consumers := p.consumers
		p.mu.Unlock()
		var wg sync.WaitGroup
		for _, c := range consumers {
			wg.Add(1)
			go func() { defer wg.Done(); c.Close() }()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); p.writer.Close(); p.client.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(closeTimeout):
			err = fmt.Errorf("pulsar consumers not closed within %s; exiting anyway (everything written was acknowledged)", closeTimeout)
		}
	})
	return err
}

// progressConns is how many connections check for earlier owners' INSERTs (settle) before a
// partition's progress is read: the checks come all at once at start (one per partition), so
// they go a few at a time instead of one by one.
const progressConns = 4

// progressReader reads partitions' progress (on start and when a partition moves here). A
// partition first settles over a few shared connections (partition p always uses connection
// p%progressConns); then its read joins the next query: the partitions that start together
// are read by one query, not one each (64 at start), over one more connection.
type progressReader struct {
	w       *Writer
	conns   [progressConns]progressConn
	running runningView

	ctx     context.Context // ends with close
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	queued  []*progressRead // reads waiting for the next query
	busy    bool            // serve is running
	closed  bool            // close has begun: no serve starts
	queries int             // progress queries serve has sent
	c       *ch.Client      // serve's connection
}

type progressConn struct {
	mu sync.Mutex
	c  *ch.Client
}

// progressRead is one partition's read, answered by serve.
type progressRead struct {
	p    int
	done chan struct{} // closed once pr or err is set
	pr   Progress
	err  error
}

// runningView is the last list of running INSERTs read from the server, shared by the
// partitions that start together, so that 64 partitions starting at once ask once.
type runningView struct {
	mu  sync.Mutex
	at  time.Time // when the query that listed them was sent
	ids []string
}

func newProgressReader(w *Writer) *progressReader {
	r := &progressReader{w: w}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r
}

func (r *progressReader) Submit(ctx context.Context, b *block) error { return r.w.Submit(ctx, b) }

// ReadProgress reads what ClickHouse holds of partition p, once no INSERT that may carry p's
// blocks is running on the server (see settle).
func (r *progressReader) ReadProgress(ctx context.Context, p int) (Progress, error) {
	since := time.Now()
	pc := &r.conns[p%progressConns]
	pc.mu.Lock()
	err := r.w.retry(ctx, "read progress", func() error {
		if err := r.w.connect(ctx, &pc.c); err != nil {
			return err
		}
		err := r.settle(ctx, pc.c, p, since)
		if err != nil {
			pc.c.Close()
			pc.c = nil
		}
		return err
	})
	pc.mu.Unlock()
	if err != nil {
		return Progress{}, err
	}
	// Settled: the read goes in a query sent from now on.
	q, err := r.enqueue(p)
	if err != nil {
		return Progress{}, err
	}
	select {
	case <-q.done:
		return q.pr, q.err
	case <-ctx.Done():
		return Progress{}, ctx.Err()
	}
}

// enqueue queues a read of partition p for serve's next query, starting serve if it is not
// running.
func (r *progressReader) enqueue(p int) (*progressRead, error) {
	q := &progressRead{p: p, done: make(chan struct{})}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("read progress of partition %d: the reader is closed", p)
	}
	r.queued = append(r.queued, q)
	if !r.busy {
		r.busy = true
		r.wg.Add(1)
		go r.serve()
	}
	return q, nil
}

// serve reads the queued partitions' progress, one query for all that are queued, until the
// queue is empty. Reads queued while a query runs go in the next one.
func (r *progressReader) serve() {
	defer r.wg.Done()
	for {
		r.mu.Lock()
		reads := r.queued
		r.queued = nil
		if len(reads) == 0 {
			r.busy = false
			r.mu.Unlock()
			return
		}
		r.queries++
		r.mu.Unlock()
		ps := make([]int, 0, len(reads))
		for _, q := range reads {
			if !slices.Contains(ps, q.p) {
				ps = append(ps, q.p)
			}
		}
		var prs map[int]Progress
		err := r.w.retry(r.ctx, "read progress", func() error {
			if err := r.w.connect(r.ctx, &r.c); err != nil {
				return err
			}
			var err error
			if prs, err = r.w.progress(r.ctx, r.c, ps); err != nil {
				r.c.Close()
				r.c = nil
			}
			return err
		})
		given := map[int]bool{}
		for _, q := range reads {
			q.pr, q.err = prs[q.p], err
			if given[q.p] { // the same partition read twice: each read gets its own map
				q.pr.Through = maps.Clone(q.pr.Through)
			}
			given[q.p] = true
			close(q.done)
		}
	}
}

// settle waits until no INSERT that may carry partition p's blocks, listed after since, is still
// running on the server. Such an INSERT belongs to an earlier owner of p: a process killed right
// after sending it (the server completes an INSERT whose data it has received), one that had not
// yet heard that p moved, or this process before p left and came back. Read before it lands,
// the progress would miss its rows and the replay would count them again.
func (r *progressReader) settle(ctx context.Context, c *ch.Client, p int, since time.Time) error {
	var (
		waited  []string // what the last look found; a later look waits only for these
		started time.Time
	)
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, 500*time.Millisecond) {
		ids, err := r.listRunning(ctx, c, since)
		if err != nil {
			return err
		}
		var still []string
		for _, id := range ids {
			if carries(id, p) && (waited == nil || slices.Contains(waited, id)) {
				still = append(still, id)
			}
		}
		if len(still) == 0 {
			if waited != nil {
				r.w.log.Info("earlier INSERTs finished; reading the partition's progress", "partition", p, "waited", time.Since(started).Round(time.Millisecond))
			}
			return nil
		}
		if waited == nil {
			started = time.Now()
			r.w.m.handoverWaits.Inc()
			r.w.log.Info("waiting for INSERTs of an earlier owner of the partition to finish before reading its progress", "partition", p, "query_ids", strings.Join(still, " "))
		}
		waited = still
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		since = time.Now()
	}
}

// listRunning returns the running INSERTs of this topic as listed by a query sent after since:
// the last list if it is recent enough, else a new one.
func (r *progressReader) listRunning(ctx context.Context, c *ch.Client, since time.Time) ([]string, error) {
	v := &r.running
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.at.After(since) {
		return v.ids, nil
	}
	at := time.Now()
	ids, err := r.w.runningInserts(ctx, c)
	if err != nil {
		return nil, err
	}
	v.at, v.ids = at, ids
	return ids, nil
}

func (r *progressReader) close() {
	r.mu.Lock()
	r.closed = true // ReadProgress starts no serve from now on
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	if r.c != nil {
		r.c.Close()
	}
	for i := range r.conns {
		pc := &r.conns[i]
		pc.mu.Lock()
		if pc.c != nil {
			pc.c.Close()
		}
		pc.mu.Unlock()
	}
}

// dlqPublisher sends messages that cannot be aggregated to the dead-letter topic with their
// original bytes, key and properties, plus the reason, waiting for the broker's receipt.
type dlqPublisher struct {
	prod  pulsar.Producer
	topic string
	m     *Metrics
}

// Publish implements deadLetter.
func (d *dlqPublisher) Publish(ctx context.Context, p int, msg pulsar.Message, reason string, cause error) error {
	if d.prod == nil {
		return nil // disabled: counted by reason, acknowledged
	}
	props := make(map[string]string, len(msg.Properties())+5)
	for k, v := range msg.Properties() {
		props[k] = v
	}
	props["pipelined-reason"] = reason
	props["pipelined-error"] = cause.Error()
	props["pipelined-source-topic"] = msg.Topic()
	props["pipelined-source-partition"] = strconv.Itoa(p)
	props["pipelined-source-message-id"] = positionOf(msg.ID()).String()
	backoff := 100 * time.Millisecond
	for {
		_, err := d.prod.Send(ctx, &pulsar.ProducerMessage{
			Payload: msg.Payload(), Key: msg.Key(), Properties: props, EventTime: msg.EventTime(),
		})
		if err == nil {
			d.m.deadLettered.Inc()
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("dead-letter message %s of partition %d: %w", positionOf(msg.ID()), p, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}
