package chlocal

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// chDB's own system.processes cannot show what a ClickHouse server shows:
// an INSERT's data is received here, outside the engine, and the engine runs
// one query at a time. So a Server keeps its own process list, and the
// statements its connections run read system.processes from it.

// process is a query a connection is handling, as system.processes shows it.
type process struct {
	queryID string
	user    string
	query   string
	db      string
	start   time.Time
}

// processes is a Server's process list: a query is in it from its decoded
// Query packet to the end of its handling, whichever way that ends. It also
// holds INSERTs for HoldInserts: a held INSERT is a query still running. The
// zero value is an empty list.
type processes struct {
	reads atomic.Int64 // statements that read system.processes

	mu      sync.Mutex
	list    []*process    // in start order
	changed chan struct{} // closed at the next change of list; nil until watched
	hold    *InsertHold
	closed  bool // the Server is closed: hold nothing
}

// add registers a query whose Query packet was just decoded. An empty
// queryID gets a UUID, as ClickHouse gives one.
func (p *processes) add(queryID, user, query, db string) *process {
	if queryID == "" {
		queryID = uuid.NewString()
	}
	pr := &process{queryID: queryID, user: user, query: query, db: db, start: time.Now()}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.list = append(p.list, pr)
	p.changedLocked()
	return pr
}

func (p *processes) remove(pr *process) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i := slices.Index(p.list, pr); i >= 0 {
		p.list = slices.Delete(p.list, i, i+1)
	}
	p.changedLocked()
}

func (p *processes) changedLocked() {
	if p.changed != nil {
		close(p.changed)
		p.changed = nil
	}
}

// watch returns the list and a channel closed at its next change, for
// tests to wait on the list rather than on time.
func (p *processes) watch() ([]process, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.changed == nil {
		p.changed = make(chan struct{})
	}
	return p.snapshotLocked(), p.changed
}

func (p *processes) snapshot() []process {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.snapshotLocked()
}

func (p *processes) snapshotLocked() []process {
	out := make([]process, len(p.list))
	for i, pr := range p.list {
		out[i] = *pr
	}
	return out
}

// processesColumns are the columns of system.processes that chlocal keeps,
// typed as in ClickHouse, in the order of ClickHouse's table.
const processesColumns = "is_initial_query UInt8, user String, query_id String, elapsed Float64, query String, current_database String"

// processesSQL returns a subquery whose rows are procs, with their elapsed
// time as of now.
func processesSQL(procs []process, now time.Time) string {
	var b strings.Builder
	b.WriteString("(SELECT * FROM values(")
	b.WriteString(quoteString(processesColumns))
	if len(procs) == 0 {
		// values() needs a row to know its columns.
		b.WriteString(", (0, '', '', 0, '', '')) WHERE 0)")
		return b.String()
	}
	for _, pr := range procs {
		b.WriteString(", (1, ")
		b.WriteString(quoteString(pr.user))
		b.WriteString(", ")
		b.WriteString(quoteString(pr.queryID))
		b.WriteString(", ")
		b.WriteString(strconv.FormatFloat(now.Sub(pr.start).Seconds(), 'f', -1, 64))
		b.WriteString(", ")
		b.WriteString(quoteString(pr.query))
		b.WriteString(", ")
		b.WriteString(quoteString(pr.db))
		b.WriteString(")")
	}
	b.WriteString("))")
	return b.String()
}

// withProcesses returns sql reading the process list as of now where it
// reads system.processes, and sql over an empty list: its header is the
// same, and its text does not change from call to call, so that DESCRIBE
// headers of it can be kept.
func (p *processes) withProcesses(sql string) (now, empty string) {
	if !strings.Contains(sql, "processes") {
		return sql, sql
	}
	st := parseStatement(sql)
	empty, n := st.replaceTable("system", "processes", processesSQL(nil, time.Time{}))
	if n == 0 {
		return sql, sql
	}
	p.reads.Add(1)
	now, _ = st.replaceTable("system", "processes", processesSQL(p.snapshot(), time.Now()))
	return now, empty
}

// InsertHold holds INSERTs into one table; see Server.HoldInserts.
type InsertHold struct {
	table    string
	held     chan struct{}
	released chan struct{}
	count    atomic.Int64
	release  sync.Once
}

// HoldInserts makes INSERTs into table (its name without database, e.g.
// "sensor_agg") wait, once all their data has been received and before the
// engine runs them, until Release. A held INSERT stays in the process list;
// it still runs after Release even if its client is gone by then, as
// ClickHouse completes an INSERT whose data it has received.
//
// One hold at a time: HoldInserts panics while another hold of the Server
// is not released. Close releases the hold; after Close, HoldInserts returns
// a released hold.
func (s *Server) HoldInserts(table string) *InsertHold {
	h := &InsertHold{table: table, held: make(chan struct{}), released: make(chan struct{})}
	p := &s.procs
	p.mu.Lock()
	defer p.mu.Unlock()
	if old := p.hold; old != nil && !old.isReleased() {
		panic(fmt.Sprintf("chlocal: HoldInserts(%q) while INSERTs into %q are held: Release that hold first", table, old.table))
	}
	if p.closed {
		h.Release()
	}
	p.hold = h
	return h
}

// Held returns a channel closed once the first INSERT is being held.
func (h *InsertHold) Held() <-chan struct{} { return h.held }

// Count returns how many INSERTs were held so far, released ones included.
func (h *InsertHold) Count() int { return int(h.count.Load()) }

// Release lets every held INSERT run; later INSERTs are not held. Safe to
// call twice.
func (h *InsertHold) Release() {
	h.release.Do(func() { close(h.released) })
}

func (h *InsertHold) isReleased() bool {
	select {
	case <-h.released:
		return true
	default:
		return false
	}
}

// holdInsert returns the channel to wait on before an INSERT into table, as
// written in the INSERT, runs; nil if the INSERT is not held.
func (p *processes) holdInsert(table string) <-chan struct{} {
	name := table
	if toks := tokenize(table); len(toks) > 0 {
		name = toks[len(toks)-1].unquote(table)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.hold
	if h == nil || p.closed || h.table != name || h.isReleased() {
		return nil
	}
	if h.count.Add(1) == 1 {
		close(h.held)
	}
	return h.released
}

// close releases the hold, if any, so that no connection waits on it.
func (p *processes) close() {
	p.mu.Lock()
	p.closed = true
	h := p.hold
	p.mu.Unlock()
	if h != nil {
		h.Release()
	}
}

// ProcessListReads returns how many statements read system.processes.
func (s *Server) ProcessListReads() int64 { return s.procs.reads.Load() }
