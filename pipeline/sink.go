package pipeline

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/pipelined/pipelined/agg"
)

// block is what one INSERT writes: one partition's rows of one window (or its late readings).
// Its rows are a deterministic function of the partition's messages from first to cut, so a
// replay after a crash rebuilds the same block with the same deduplication token.
type block struct {
	partition  int
	window     *agg.Window // nil for a block of late readings
	late       *lateRows
	partial    bool     // written before the window closed (idle, shutdown, memory pressure)
	first      Position // first message in the block
	cut        Position // last message the partition had processed when the block was cut
	closedAt   time.Time
	lateSizeMs int64         // window size, for the late table's window_start
	done       atomic.Bool   // set by the writer once the block is in ClickHouse
	owner      *atomic.Int64 // the partition worker's count of partition losses
	epoch      int64         // that count when the block was cut
}

// stale reports whether the partition changed hands (Failover) since the block was cut: its
// messages are replayed by the new owner, so the block must not be written as well.
func (b *block) stale() bool { return b.owner != nil && b.owner.Load() != b.epoch }

func (b *block) rows() int {
	if b.window != nil {
		return b.window.Len()
	}
	return b.late.len()
}

// lateRows are readings whose window had closed, kept for clickhouse.late_table.
type lateRows struct {
	pos      []Position
	readings []agg.Reading
	received []int64
}

func (l *lateRows) len() int { return len(l.pos) }

func (l *lateRows) add(p Position, r *agg.Reading, nowMs int64) {
	l.pos = append(l.pos, p)
	l.readings = append(l.readings, *r)
	l.received = append(l.received, nowMs)
}

// Writer writes blocks to ClickHouse over the native protocol, Writers connections in parallel,
// retrying each block with backoff until it is in or the writer is closed. Each block carries an
// insert_deduplication_token, so a retry of a block that did land is dropped by ClickHouse.
type Writer struct {
	cfg      ClickHouseConfig
	topic    string
	spec     agg.Spec
	measures []string // column prefixes
	log      *slog.Logger
	m        *Metrics

	// ins has one queue per writer; a partition always uses the same one, so its blocks are
	// written in the order they were cut. That makes what ClickHouse holds of a partition a
	// prefix of its blocks, which the replay skip relies on (see Progress).
	ins    []chan *block
	hurry  <-chan struct{} // closed when lingering is over (see Start)
	budget rowBudget
	wg     sync.WaitGroup
	stop   context.CancelFunc
	once   sync.Once

	// Every INSERT's query_id says which partitions it carries (see insertQueryID), so that a
	// new owner of a partition can wait for the INSERTs of an earlier one (see runningInserts).
	idPrefix string // "pipelined:<topic hash>:"
	instance string // random, per process
	seq      atomic.Uint64
}

// NewWriter returns a writer for cfg. It connects in Start.
func NewWriter(cfg *Config, log *slog.Logger, m *Metrics) *Writer {
	w := &Writer{
		cfg:   cfg.ClickHouse,
		topic: cfg.Pulsar.Topic,
		spec:  cfg.Spec(),
		log:   log,
		m:     m,
	}
	for range cfg.ClickHouse.Writers {
		w.ins = append(w.ins, make(chan *block, 64))
	}
	for _, f := range cfg.Schema.Measures {
		w.measures = append(w.measures, columnName(f))
	}
	w.budget.init(cfg.Limits.MaxPendingRows, m)
	th := sha256.Sum256([]byte(cfg.Pulsar.Topic))
	w.idPrefix = "pipelined:" + hex.EncodeToString(th[:4]) + ":"
	var inst [6]byte
	_, _ = rand.Read(inst[:]) // crypto/rand.Read never fails on Linux
	w.instance = hex.EncodeToString(inst[:])
	return w
}

func (w *Writer) options() (ch.Options, error) {
	o := ch.Options{
		Address:     w.cfg.Addr,
		Database:    w.cfg.Database,
		User:        w.cfg.User,
		Password:    string(w.cfg.Password),
		ClientName:  "pipelined",
		DialTimeout: w.cfg.DialTimeout,
		ReadTimeout: 2 * time.Minute, // a large block can take a while to commit
	}
	switch w.cfg.Compression {
	case "lz4":
		o.Compression = ch.CompressionLZ4
	case "zstd":
		o.Compression = ch.CompressionZSTD
	default:
		o.Compression = ch.CompressionDisabled
	}
	if w.cfg.TLS {
		tc := &tls.Config{InsecureSkipVerify: w.cfg.TLSInsecureSkipVerify} // #nosec G402 -- opt-in by config
		if w.cfg.TLSCAFile != "" {
			pem, err := os.ReadFile(w.cfg.TLSCAFile)
			if err != nil {
				return o, fmt.Errorf("clickhouse.tls_ca_file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return o, fmt.Errorf("clickhouse.tls_ca_file %q: no certificate found", w.cfg.TLSCAFile)
			}
		}
		o.TLS = tc
	}
	return o, nil
}

// connect dials *c unless it is open.
func (w *Writer) connect(ctx context.Context, c **ch.Client) error {
	if *c != nil && !(*c).IsClosed() {
		return nil
	}
	var err error
	*c, err = w.dial(ctx)
	return err
}

// dial connects, retrying with backoff until ctx ends.
func (w *Writer) dial(ctx context.Context) (*ch.Client, error) {
	return w.dialDB(ctx, w.cfg.Database)
}

// dialDB connects with db as the session's database ("" for the server's default).
func (w *Writer) dialDB(ctx context.Context, db string) (*ch.Client, error) {
	o, err := w.options()
	if err != nil {
		return nil, err
	}
	o.Database = db
	var c *ch.Client
	err = w.retry(ctx, "connect", func() (err error) {
		c, err = ch.Dial(ctx, o)
		return err
	})
	return c, err
}

// retry runs f until it succeeds or ctx ends, backing off from 100ms to RetryMaxBackoff.
func (w *Writer) retry(ctx context.Context, what string, f func() error) error {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			if attempt > 1 {
				w.log.Info("clickhouse recovered", "op", what, "attempts", attempt)
				w.m.chDown.Store(false)
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("clickhouse %s: %w (gave up: %w)", what, err, ctx.Err())
		}
		w.m.chErrors.Inc()
		w.m.chDown.Store(true)
		w.log.Warn("clickhouse error, retrying", "op", what, "addr", w.cfg.Addr, "attempt", attempt, "backoff", backoff, "err", err.Error())
		select {
		case <-ctx.Done():
			return fmt.Errorf("clickhouse %s: %w (gave up: %w)", what, err, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, w.cfg.RetryMaxBackoff)
	}
}

func (w *Writer) table() string { return "`" + w.cfg.Database + "`.`" + w.cfg.Table + "`" }
func (w *Writer) lateTable() string {
	return "`" + w.cfg.Database + "`.`" + w.cfg.LateTable + "`"
}

// DDL returns the statements that create the table, the final view and the late table.
//
// The table is an AggregatingMergeTree of SimpleAggregateFunction columns: several rows for one
// device and window (partial flushes, or one per host after a Failover hand-over) merge into one,
// and the view merges what has not been merged yet.
func (w *Writer) DDL() []string {
	ttl := ""
	if w.cfg.TTL > 0 {
		ttl = fmt.Sprintf("\nTTL window_start + INTERVAL %d SECOND", int64(w.cfg.TTL.Seconds()))
	}
	var cols, view []string
	cols = append(cols,
		"window_start DateTime('UTC') CODEC(Delta, ZSTD)",
		"device_id Int64",
		"source_partition UInt16",
		"count SimpleAggregateFunction(sum, UInt64)",
		"first_event SimpleAggregateFunction(min, DateTime64(3, 'UTC'))",
		"last_event SimpleAggregateFunction(max, DateTime64(3, 'UTC'))")
	// Arguments are qualified (t.) because ClickHouse resolves a bare name to a same-named alias.
	// Results are cast to plain types: over SimpleAggregateFunction columns some versions
	// return the SimpleAggregateFunction type itself, which clients need not understand.
	view = append(view, "window_start", "device_id", "toUInt64(sum(t.count)) AS count",
		"CAST(min(t.first_event) AS DateTime64(3, 'UTC')) AS first_event",
		"CAST(max(t.last_event) AS DateTime64(3, 'UTC')) AS last_event")
	for _, m := range w.measures {
		cols = append(cols,
			m+"_min SimpleAggregateFunction(min, Float64)",
			m+"_max SimpleAggregateFunction(max, Float64)",
			m+"_sum SimpleAggregateFunction(sum, Float64)")
		view = append(view,
			fmt.Sprintf("toFloat64(sum(t.%[1]s_sum) / sum(t.count)) AS %[1]s_avg", m),
			fmt.Sprintf("toFloat64(min(t.%[1]s_min)) AS %[1]s_min", m),
			fmt.Sprintf("toFloat64(max(t.%[1]s_max)) AS %[1]s_max", m),
			fmt.Sprintf("toFloat64(sum(t.%[1]s_sum)) AS %[1]s_sum", m))
	}
	for _, s := range w.spec.Statuses {
		cols = append(cols, fmt.Sprintf("%s SimpleAggregateFunction(sum, UInt64)", statusColumn(s)))
		view = append(view, fmt.Sprintf("toUInt64(sum(t.%[1]s)) AS %[1]s", statusColumn(s)))
	}
	cols = append(cols, "flushed_through SimpleAggregateFunction(max, UInt128)")

	lateCols := []string{
		"source_partition UInt16", "message_position UInt128", "device_id Int64",
		"event_time DateTime64(3, 'UTC')", "window_start DateTime('UTC')",
		"received_at DateTime64(3, 'UTC')", "status Int32"}
	for _, m := range w.measures {
		lateCols = append(lateCols, m+" Float64")
	}
	return []string{
		fmt.Sprintf("CREATE DATABASE IF NOT EXISTS `%s`", w.cfg.Database),
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (\n  %s\n) ENGINE = AggregatingMergeTree\nPARTITION BY toYYYYMMDD(window_start)\nORDER BY (source_partition, device_id, window_start)%s\nSETTINGS non_replicated_deduplication_window = 10000",
			w.table(), strings.Join(cols, ",\n  "), ttl),
		fmt.Sprintf("CREATE VIEW IF NOT EXISTS `%s`.`%s` AS\nSELECT %s\nFROM %s AS t\nGROUP BY window_start, device_id",
			w.cfg.Database, w.cfg.ViewName(), strings.Join(view, ", "), w.table()),
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (\n  %s\n) ENGINE = ReplacingMergeTree\nPARTITION BY toYYYYMMDD(window_start)\nORDER BY (source_partition, message_position)%s\nSETTINGS non_replicated_deduplication_window = 10000",
			w.lateTable(), strings.Join(lateCols, ",\n  "), ttl),
	}
}

func statusColumn(v int32) string {
	if v < 0 {
		return fmt.Sprintf("status_neg%d", -int64(v))
	}
	return fmt.Sprintf("status_%d", v)
}

// Setup creates the tables when clickhouse.create_tables is on, retrying until ctx ends.
func (w *Writer) Setup(ctx context.Context) error {
	if !w.cfg.CreateTables {
		return nil
	}
	c, err := w.dialDB(ctx, "") // the database may not exist yet; every statement names it
	if err != nil {
		return err
	}
	defer c.Close()
	for _, q := range w.DDL() {
		if err := c.Do(ctx, ch.Query{Body: q}); err != nil {
			return fmt.Errorf("create: %w\n%s", err, q)
		}
	}
	return nil
}

// Progress is what ClickHouse already holds of one partition, read when the partition is
// (re)assigned: for each window start (ms), the last message position written; and the highest
// event time written, from which the watermark is restored.
//
// A partition's blocks are written in the order they were cut (one writer queue per partition,
// each batch retried until it lands), so what ClickHouse holds is a prefix of them. A window's
// blocks cover consecutive runs of its messages, so every message of window w at or before
// Through[w] is in ClickHouse, and none after it.
type Progress struct {
	Through  map[int64]Position
	Max      Position // the highest of Through
	MaxEvent int64    // epoch ms; math.MinInt64 if nothing was written
}

// progress reads the progress of partitions ps from the table in one query.
//
// For each partition it keeps the windows starting at most clickhouse.lookback before the
// newest window that partition wrote, not before the wall clock: a backlog older than the
// lookback (a long outage, a replayed topic) is replayed after a crash too, and its windows
// must be found to be skipped. The query reads from the earliest of those bounds; the rows of
// a partition before its own bound are dropped here, so each partition's Progress is what a
// query for it alone returns.
func (w *Writer) progress(ctx context.Context, c *ch.Client, ps []int) (map[int]Progress, error) {
	out := make(map[int]Progress, len(ps))
	in := make([]string, len(ps))
	for i, p := range ps {
		out[p] = Progress{Through: map[int64]Position{}, MaxEvent: math.MinInt64}
		in[i] = strconv.Itoa(p)
	}
	lookback := int64(w.cfg.Lookback.Seconds())
	var (
		part   proto.ColInt64
		start  proto.ColInt64
		thru   proto.ColUInt128
		maxEv  proto.ColInt64
		set    = strings.Join(in, ", ")
		since  = fmt.Sprintf("toDateTime(greatest(0, (SELECT toInt64(min(m)) FROM (SELECT toUnixTimestamp(max(window_start)) AS m FROM %s WHERE source_partition IN (%s) GROUP BY source_partition)) - %d))", w.table(), set, lookback)
		query  = fmt.Sprintf("SELECT toInt64(source_partition) AS p, toInt64(toUnixTimestamp(window_start)) * 1000 AS s, toUInt128(max(flushed_through)) AS t, toInt64(max(toUnixTimestamp64Milli(last_event))) AS e FROM %s WHERE source_partition IN (%s) AND window_start >= %s GROUP BY source_partition, window_start", w.table(), set, since)
		result = proto.Results{{Name: "p", Data: &part}, {Name: "s", Data: &start}, {Name: "t", Data: &thru}, {Name: "e", Data: &maxEv}}
		rows   []progressRow
	)
	err := c.Do(ctx, ch.Query{Body: query, Result: result.Auto(), OnResult: func(ctx context.Context, _ proto.Block) error {
		for i := range start.Rows() {
			rows = append(rows, progressRow{p: int(part.Row(i)), start: start.Row(i), thru: positionFrom(thru.Row(i)), maxEvent: maxEv.Row(i)})
		}
		return nil
	}})
	if err != nil {
		return nil, fmt.Errorf("progress of partitions %s: %w", set, err)
	}
	newest := map[int]int64{}
	for _, r := range rows {
		if s, ok := newest[r.p]; !ok || r.start > s {
			newest[r.p] = r.start
		}
	}
	for _, r := range rows {
		pr, ok := out[r.p]
		if !ok {
			return nil, fmt.Errorf("progress of partitions %s: the server returned partition %d", set, r.p)
		}
		if r.start < newest[r.p]-lookback*1000 {
			continue // before this partition's own bound
		}
		pr.Through[r.start] = r.thru
		if pr.Max.Less(r.thru) {
			pr.Max = r.thru
		}
		pr.MaxEvent = max(pr.MaxEvent, r.maxEvent)
		out[r.p] = pr
	}
	return out, nil
}

// progressRow is one window of one partition, as Writer.progress reads it.
type progressRow struct {
	p        int
	start    int64 // window start, epoch ms
	thru     Position
	maxEvent int64
}

// Start connects the writers; they run until Close. Once hurry is closed (a graceful stop has
// begun: every partition is writing what it holds), they no longer linger for more blocks.
func (w *Writer) Start(ctx context.Context, hurry <-chan struct{}) {
	w.hurry = hurry
	ctx, w.stop = context.WithCancel(ctx)
	for _, in := range w.ins {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.run(ctx, in)
		}()
	}
}

// Submit hands b to the writers, waiting while pending rows are over limits.max_pending_rows:
// that wait is how a slow or absent ClickHouse stops intake instead of growing memory.
func (w *Writer) Submit(ctx context.Context, b *block) error {
	n := b.rows()
	t0 := time.Now()
	if err := w.budget.acquire(ctx, n); err != nil {
		return err
	}
	select {
	case w.ins[b.partition%len(w.ins)] <- b:
	case <-ctx.Done():
		w.budget.release(n)
		return ctx.Err()
	}
	if d := time.Since(t0); d > time.Millisecond {
		w.m.blockedSink.Add(d.Seconds())
	}
	return nil
}

// maxBatchRows bounds how many rows one INSERT carries when blocks are waiting.
const maxBatchRows = 500_000

func (w *Writer) run(ctx context.Context, in <-chan *block) {
	cols := newAggColumns(w.spec, w.measures)
	late := newLateColumns(w.measures)
	var c *ch.Client
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	var batch, lateBatch []*block
	for {
		var b *block
		select {
		case b = <-in:
		case <-ctx.Done():
			return
		}
		batch, lateBatch = w.gather(ctx, in, b, batch[:0], lateBatch[:0])
		// After the linger, not before it: a partition may have moved meanwhile.
		batch, lateBatch = w.dropStale(batch), w.dropStale(lateBatch)
		if !w.insert(ctx, &c, w.table(), cols, batch) || !w.insert(ctx, &c, w.lateTable(), late, lateBatch) {
			return
		}
	}
}

// gather returns b and the blocks that reach in within clickhouse.insert_linger of it (only
// those already waiting when the linger is 0 or a graceful stop has begun), up to maxBatchRows
// rows: one INSERT of many blocks makes one part on the server, not many. Window blocks go to
// batch, late ones to lateBatch.
func (w *Writer) gather(ctx context.Context, in <-chan *block, b *block, batch, lateBatch []*block) ([]*block, []*block) {
	var linger <-chan time.Time
	if w.cfg.InsertLinger > 0 {
		t := time.NewTimer(w.cfg.InsertLinger)
		defer t.Stop()
		linger = t.C
	}
	rows := 0
	for {
		if b.window != nil {
			batch = append(batch, b)
		} else {
			lateBatch = append(lateBatch, b)
		}
		if rows += b.rows(); rows >= maxBatchRows {
			return batch, lateBatch
		}
		select {
		case b = <-in:
			continue
		default:
		}
		if linger == nil {
			return batch, lateBatch
		}
		select {
		case b = <-in:
		case <-linger:
			return batch, lateBatch
		case <-w.hurry:
			return batch, lateBatch
		case <-ctx.Done():
			return batch, lateBatch
		}
	}
}

// dropStale removes the blocks of partitions this process no longer owns (Failover): their
// messages are replayed by the new owner.
func (w *Writer) dropStale(blocks []*block) []*block {
	return slices.DeleteFunc(blocks, func(b *block) bool {
		if !b.stale() {
			return false
		}
		w.budget.release(b.rows())
		w.log.Info("dropped a block of a partition this consumer no longer owns", "partition", b.partition)
		return true
	})
}

// blockColumns are the columns of one table's INSERT: aggColumns or lateColumns.
type blockColumns interface {
	reset()
	fill(b *block)
	insert(table string) ch.Query // the INSERT of what fill added
}

// insert writes blocks into table in one INSERT through cols, retrying until it succeeds or
// ctx ends, and marks them done; with no blocks it does nothing. The deduplication token is
// derived from the blocks' own, so a retry of an INSERT that did land is dropped by ClickHouse.
func (w *Writer) insert(ctx context.Context, c **ch.Client, table string, cols blockColumns, blocks []*block) bool {
	if len(blocks) == 0 {
		return true
	}
	cols.reset()
	for _, b := range blocks {
		cols.fill(b)
	}
	q := cols.insert(table)
	rows := 0
	h := sha256.New()
	for _, b := range blocks {
		rows += b.rows()
		io.WriteString(h, b.token(w.topic))
		h.Write([]byte{0})
	}
	q.Settings = []ch.Setting{{Key: "insert_deduplication_token", Value: "pipelined-" + hex.EncodeToString(h.Sum(nil)), Important: true}}
	// Every attempt has the same query_id: while an attempt whose connection broke is still
	// running on the server, ClickHouse refuses the next one (QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING)
	// and the retry waits for it, instead of racing it.
	q.QueryID = w.insertQueryID(blocks)
	t0 := time.Now()
	err := w.retry(ctx, "insert", func() error {
		if err := w.connect(ctx, c); err != nil {
			return err
		}
		if err := (*c).Do(ctx, q); err != nil {
			(*c).Close() // the connection state is unknown after a failed insert
			*c = nil
			return fmt.Errorf("insert %d rows in %d blocks (first: partition %d window %d): %w", rows, len(blocks), blocks[0].partition, windowStart(blocks[0]), err)
		}
		return nil
	})
	if err != nil {
		w.log.Error("blocks not written; they stay unacknowledged and will be replayed", "blocks", len(blocks), "rows", rows, "err", err.Error())
		w.budget.release(rows)
		return false
	}
	w.m.flushDuration.UpdateDuration(t0)
	for _, b := range blocks {
		if !b.closedAt.IsZero() {
			w.m.closeToVisible.UpdateDuration(b.closedAt)
		}
		if b.window != nil {
			w.m.rowsWritten.Add(b.rows())
		} else {
			w.m.lateWritten.Add(b.rows())
		}
		b.done.Store(true)
	}
	w.m.blocksWritten.Add(len(blocks))
	w.budget.release(rows)
	return true
}

// insertQueryID names an INSERT of blocks: "pipelined:<topic hash>:<instance>:<n>:<partitions>",
// the partitions as a bitmap in hex (bit p%8 of byte p/8 for partition p).
func (w *Writer) insertQueryID(blocks []*block) string {
	var set []byte
	for _, b := range blocks {
		if i := b.partition / 8; i >= len(set) {
			set = append(set, make([]byte, i+1-len(set))...)
		}
		set[b.partition/8] |= 1 << (b.partition % 8)
	}
	return w.idPrefix + w.instance + ":" + strconv.FormatUint(w.seq.Add(1), 10) + ":" + hex.EncodeToString(set)
}

// carries reports whether the INSERT named id (see insertQueryID) may carry partition p's
// blocks. An id of this topic that does not parse is taken to carry every partition.
func carries(id string, p int) bool {
	i := strings.LastIndexByte(id, ':')
	if i < 0 {
		return true
	}
	set, err := hex.DecodeString(id[i+1:])
	if err != nil {
		return true
	}
	return p/8 < len(set) && set[p/8]&(1<<(p%8)) != 0
}

// runningInserts returns the query_ids of this topic's INSERTs (from any pipelined process)
// that the server is running now, in system.processes: from the moment it has the query, while
// the data arrives, until the rows are committed or the INSERT fails.
func (w *Writer) runningInserts(ctx context.Context, c *ch.Client) ([]string, error) {
	var (
		ids proto.ColStr
		out []string
	)
	err := c.Do(ctx, ch.Query{
		Body:   "SELECT query_id FROM system.processes WHERE startsWith(query_id, '" + w.idPrefix + "')",
		Result: proto.Results{{Name: "query_id", Data: &ids}},
		OnResult: func(context.Context, proto.Block) error {
			for i := range ids.Rows() {
				out = append(out, ids.Row(i))
			}
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("running INSERTs (system.processes): %w", err)
	}
	return out, nil
}

func windowStart(b *block) int64 {
	if b.window != nil {
		return b.window.Start
	}
	return 0
}

// token is the block's insert_deduplication_token: the same messages give the same token.
func (b *block) token(topic string) string {
	kind := "w"
	if b.window == nil {
		kind = "late"
	}
	return fmt.Sprintf("pipelined/%s/%d/%s%d/%s-%s/%d", topic, b.partition, kind, windowStart(b), b.first, b.cut, b.rows())
}

// Close stops the writers; blocks not yet written stay unacknowledged. Safe to call twice.
func (w *Writer) Close() {
	w.once.Do(func() {
		if w.stop != nil {
			w.stop()
		}
		w.budget.close()
		w.wg.Wait()
	})
}

// rowBudget counts rows handed to the writers and not yet written.
type rowBudget struct {
	mu     sync.Mutex
	cond   *sync.Cond
	used   int
	max    int
	closed bool
	m      *Metrics
}

func (r *rowBudget) init(max int, m *Metrics) {
	r.max, r.m = max, m
	r.cond = sync.NewCond(&r.mu)
}

// acquire waits until n rows fit (a block larger than the budget waits for an empty one).
func (r *rowBudget) acquire(ctx context.Context, n int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		r.mu.Lock()
		r.cond.Broadcast()
		r.mu.Unlock()
	})
	defer stop()
	for r.used > 0 && r.used+n > r.max {
		if ctx.Err() != nil || r.closed {
			return errors.Join(ctx.Err(), errors.New("writer closed"))
		}
		r.cond.Wait()
	}
	r.used += n
	r.m.pendingRows.Store(int64(r.used))
	return nil
}

func (r *rowBudget) release(n int) {
	r.mu.Lock()
	r.used -= n
	r.m.pendingRows.Store(int64(r.used))
	r.cond.Broadcast()
	r.mu.Unlock()
}

func (r *rowBudget) close() {
	r.mu.Lock()
	r.closed = true
	r.cond.Broadcast()
	r.mu.Unlock()
}
