package chlocal

import (
	"context"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
)

// procRow is a row of system.processes as the tests select it.
type procRow struct {
	queryID, user, query, db string
	elapsed                  float64
}

const selectProcesses = "SELECT query_id, user, query, current_database, elapsed FROM system.processes"

// processRows runs a selectProcesses query with queryID and returns its rows by query_id.
func processRows(t testing.TB, c *ch.Client, queryID, body string) map[string]procRow {
	t.Helper()
	var id, user, query, db proto.ColStr
	var elapsed proto.ColFloat64
	rows := map[string]procRow{}
	if err := c.Do(testCtx(t), ch.Query{
		QueryID: queryID,
		Body:    body,
		Result:  proto.Results{{Data: &id}, {Data: &user}, {Data: &query}, {Data: &db}, {Data: &elapsed}},
		OnResult: func(ctx context.Context, b proto.Block) error {
			for i := range id.Rows() {
				rows[id.Row(i)] = procRow{id.Row(i), user.Row(i), query.Row(i), db.Row(i), elapsed.Row(i)}
			}
			return nil
		},
	}); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return rows
}

// waitProcesses waits until cond holds for the Server's process list. A
// query leaves the list when its handler ends, which no client sees when
// the client is gone: the test waits on the list's changes.
func waitProcesses(t testing.TB, s *Server, what string, cond func([]process) bool) {
	t.Helper()
	deadline := time.After(time.Minute) // a safety net: cond is expected long before
	for {
		list, changed := s.procs.watch()
		if cond(list) {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			var running []string
			for _, p := range list {
				running = append(running, p.queryID+": "+p.query)
			}
			t.Fatalf("waiting for %s: process list %q", what, running)
		}
	}
}

func hasQuery(list []process, field func(process) string, v string) bool {
	for _, p := range list {
		if field(p) == v {
			return true
		}
	}
	return false
}

// insertIDs inserts ids into table's column id, sending them as data.
func insertIDs(t testing.TB, c *ch.Client, table string, ids ...uint64) {
	t.Helper()
	var col proto.ColUInt64
	col = append(col, ids...)
	if err := c.Do(testCtx(t), ch.Query{Body: "INSERT INTO " + table + " (id) VALUES", Input: proto.Input{{Name: "id", Data: &col}}}); err != nil {
		t.Fatalf("insert into %s: %v", table, err)
	}
}

func byID(p process) string    { return p.queryID }
func byQuery(p process) string { return p.query }

// TestProcessList checks that a statement on system.processes sees itself and an INSERT still
// receiving its data on another connection, and that the INSERT leaves the list when it ends.
func TestProcessList(t *testing.T) {
	s := NewTest(t)
	admin := dial(t, s, ch.Options{})
	createDatabase(t, s, "procs_list")
	exec(t, admin, "CREATE TABLE procs_list.t (id UInt64) ENGINE = MergeTree ORDER BY id")

	writer := dial(t, s, ch.Options{User: "writer", Database: "procs_list"})
	var ids proto.ColUInt64
	ids.Append(1)
	ids.Append(2)
	sending, finish, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	const insertSQL = "INSERT INTO t (id) VALUES"
	go func() {
		done <- writer.Do(testCtx(t), ch.Query{
			QueryID: "procs-insert-1",
			Body:    insertSQL,
			Input:   proto.Input{{Name: "id", Data: &ids}},
			// Called once the first block is sent: the server has
			// answered the query with its header, so it runs.
			OnInput: func(ctx context.Context) error {
				close(sending)
				select {
				case <-finish:
				case <-ctx.Done():
					return ctx.Err()
				}
				ids.Reset()
				return io.EOF
			},
		})
	}()
	select {
	case <-sending:
	case err := <-done:
		t.Fatalf("insert ended before sending its data: %v", err)
	}

	const listSQL = selectProcesses + " ORDER BY query_id"
	rows := processRows(t, admin, "procs-select-1", listSQL)
	equal(t, "processes while the INSERT receives data", len(rows), 2)
	self, ins := rows["procs-select-1"], rows["procs-insert-1"]
	equal(t, "own entry", self, procRow{"procs-select-1", "default", listSQL, "default", self.elapsed})
	equal(t, "INSERT's entry", ins, procRow{"procs-insert-1", "writer", insertSQL, "procs_list", ins.elapsed})
	if self.elapsed < 0 || ins.elapsed <= 0 || ins.elapsed > 300 {
		t.Errorf("elapsed: own %v, INSERT %v; want seconds since they started", self.elapsed, ins.elapsed)
	}

	close(finish)
	if err := <-done; err != nil {
		t.Fatalf("insert: %v", err)
	}
	rows = processRows(t, admin, "procs-select-2", listSQL)
	if _, ok := rows["procs-insert-1"]; ok || len(rows) != 1 {
		t.Errorf("processes after the INSERT: %+v, want only the SELECT", rows)
	}
	equal(t, "rows inserted", strings1(t, admin, "SELECT toString(count()) FROM procs_list.t")[0], "2")
}

// TestHoldInserts checks an INSERT held after its client sent all its data and went away: it is
// in system.processes while held, and runs on Release.
func TestHoldInserts(t *testing.T) {
	s := NewTest(t)
	admin := dial(t, s, ch.Options{})
	createDatabase(t, s, "procs_hold")
	exec(t, admin, "CREATE TABLE procs_hold.sensor_agg (id UInt64) ENGINE = MergeTree ORDER BY id",
		"CREATE TABLE procs_hold.other (id UInt64) ENGINE = MergeTree ORDER BY id")
	h := s.HoldInserts("sensor_agg")

	writer := dial(t, s, ch.Options{})
	var ids proto.ColUInt64
	for i := range 3 {
		ids.Append(uint64(i))
	}
	done := make(chan error, 1)
	go func() {
		done <- writer.Do(testCtx(t), ch.Query{
			QueryID: "held-1",
			Body:    "INSERT INTO `procs_hold`.`sensor_agg` (id) VALUES",
			Input:   proto.Input{{Name: "id", Data: &ids}},
		})
	}()
	select {
	case <-h.Held():
	case err := <-done:
		t.Fatalf("insert ended without being held: %v", err)
	}
	equal(t, "held", h.Count(), 1)

	// The client goes. (Canceling the context would too, after ch-go's
	// 3 s wait for the server to answer the Cancel packet.)
	_ = writer.Close()
	if err := <-done; err == nil {
		t.Fatal("insert whose client closed: no error")
	}
	rows := processRows(t, admin, "", selectProcesses)
	if _, ok := rows["held-1"]; !ok {
		t.Errorf("processes while the INSERT is held, its client gone: %+v, want held-1", rows)
	}
	// Other tables are not held.
	insertIDs(t, admin, "procs_hold.other", 1)
	equal(t, "rows while held", strings1(t, admin, "SELECT toString(count()) FROM procs_hold.sensor_agg")[0], "0")

	h.Release()
	h.Release()
	waitProcesses(t, s, "the held INSERT to end", func(list []process) bool { return !hasQuery(list, byID, "held-1") })
	equal(t, "rows after Release", strings1(t, admin, "SELECT toString(count()) FROM procs_hold.sensor_agg")[0], "3")
	rows = processRows(t, admin, "", selectProcesses)
	if _, ok := rows["held-1"]; ok {
		t.Errorf("processes after Release: %+v, want no held-1", rows)
	}
	insertIDs(t, admin, "procs_hold.sensor_agg", 7)
	equal(t, "held after Release", h.Count(), 1)
}

// TestCloseReleasesHeldInsert checks that Close does not wait forever on a held INSERT, and that
// the INSERT still runs.
func TestCloseReleasesHeldInsert(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	createDatabase(t, s, "procs_close")
	if _, err := s.Query("CREATE TABLE procs_close.t (id UInt64) ENGINE = MergeTree ORDER BY id"); err != nil {
		t.Fatal(err)
	}
	h := s.HoldInserts("t")
	c := dial(t, s, ch.Options{Database: "procs_close"})
	var ids proto.ColUInt64
	ids.Append(1)
	ids.Append(2)
	done := make(chan error, 1)
	go func() {
		done <- c.Do(testCtx(t), ch.Query{Body: "INSERT INTO t VALUES", Input: proto.Input{{Name: "id", Data: &ids}}})
	}()
	select {
	case <-h.Held():
	case err := <-done:
		t.Fatalf("insert ended without being held: %v", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("close: %v", err)
		}
	case <-time.After(time.Minute): // a hang is the failure
		t.Fatal("Close waits on the held INSERT")
	}
	<-done // the server closed the connection
	got, err := s.Query("SELECT count() FROM procs_close.t")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "rows of the INSERT held at Close", got, "2\n")
	s.HoldInserts("t")
	if s.procs.holdInsert("t") != nil {
		t.Error("a closed server holds INSERTs")
	}
}

// TestInsertCutShort checks that an INSERT whose client goes before the end of its data leaves
// the process list and inserts nothing.
func TestInsertCutShort(t *testing.T) {
	s := NewTest(t)
	admin := dial(t, s, ch.Options{})
	createDatabase(t, s, "procs_cut")
	exec(t, admin, "CREATE TABLE procs_cut.t (a UInt64, s String) ENGINE = MergeTree ORDER BY a")

	// ch-go always ends its data: speak the protocol by hand, and send no
	// query ID, so that the server makes one.
	const insertSQL = "INSERT INTO procs_cut.t (a, s) VALUES"
	var b proto.Buffer
	encodeHello(&b, proto.Version)
	proto.Query{
		Body:        insertSQL,
		Stage:       proto.StageComplete,
		Compression: proto.CompressionDisabled,
		Info: proto.ClientInfo{ProtocolVersion: proto.Version, Interface: proto.InterfaceTCP,
			Query: proto.ClientQueryInitial, ClientName: "raw"},
	}.EncodeAware(&b, proto.Version)
	encodeData(t, &b, proto.Version, false, nil)         // no external tables
	encodeData(t, &b, proto.Version, false, testInput()) // 5 rows, and no end of data
	nc, err := net.DialTimeout("tcp", s.Addr(), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = nc.Close() }()
	if _, err := nc.Write(b.Buf); err != nil {
		t.Fatal(err)
	}
	waitProcesses(t, s, "the INSERT to start", func(list []process) bool { return hasQuery(list, byQuery, insertSQL) })
	var ins procRow
	for _, r := range processRows(t, admin, "", selectProcesses) {
		if r.query == insertSQL {
			ins = r
		}
	}
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	if !uuid.MatchString(ins.queryID) || ins.user != "default" {
		t.Errorf("INSERT receiving data: %+v, want a UUID query_id and user default", ins)
	}

	_ = nc.Close()
	waitProcesses(t, s, "the INSERT to end", func(list []process) bool { return !hasQuery(list, byQuery, insertSQL) })
	equal(t, "rows of the INSERT cut short", strings1(t, admin, "SELECT toString(count()) FROM procs_cut.t")[0], "0")
	for _, r := range processRows(t, admin, "", selectProcesses) {
		if r.query == insertSQL {
			t.Errorf("processes after the client left: %+v", r)
		}
	}
}

// TestProcessesQueries checks statements over system.processes: the forms of the name, aliases,
// string literals, an empty result's header, the quoting of query texts and the count of reads.
func TestProcessesQueries(t *testing.T) {
	s := NewTest(t)
	c := dial(t, s, ch.Options{})
	reads := s.ProcessListReads()
	str := func(queryID, sql string) string {
		t.Helper()
		var col proto.ColStr
		if err := c.Do(testCtx(t), ch.Query{QueryID: queryID, Body: sql, Result: proto.Results{{Data: &col}}}); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if col.Rows() != 1 {
			t.Fatalf("%s: %d rows, want 1", sql, col.Rows())
		}
		return col.Row(0)
	}
	for _, tt := range []struct{ id, sql, want string }{
		{"q1", "SELECT toString(count()) FROM system.processes", "1"},
		{"q2", "SELECT toString(count()) FROM system.processes WHERE query_id != 'q2'", "0"},
		{"q3", "SELECT p.query_id FROM system.processes AS p WHERE p.is_initial_query = 1", "q3"},
		{"q4", "SELECT p.user FROM system.processes p", "default"},
		{"q5", "SELECT processes.current_database FROM `system`.\"processes\"", "default"},
		{"q6", "SELECT system.processes.query_id FROM system . processes FORMAT TSV", "q6"},
		{"q7", "SELECT assumeNotNull((SELECT any(query_id) FROM system.processes) || toString((SELECT count() FROM system.processes)))", "q71"},
	} {
		equal(t, tt.sql, str(tt.id, tt.sql), tt.want)
	}
	equal(t, "reads", s.ProcessListReads()-reads, 7)

	equal(t, "a literal", str("", "SELECT 'system.processes' -- FROM system.processes"), "system.processes")
	equal(t, "reads after a literal", s.ProcessListReads()-reads, 7)

	// The query text goes through a string literal of the rewritten statement.
	quoted := "SELECT query FROM system.processes WHERE 'it\\'s' != 'a\\\\b\n\n\"c\"'"
	equal(t, "query with quotes", str("", quoted), quoted)

	var res proto.Results
	if err := c.Do(testCtx(t), ch.Query{Body: "SELECT * FROM system.processes WHERE elapsed < 0", Result: res.Auto()}); err != nil {
		t.Fatalf("select no rows: %v", err)
	}
	var cols []string
	for _, r := range res {
		cols = append(cols, r.Name+" "+string(r.Data.Type()))
	}
	equal(t, "columns of no rows", strings.Join(cols, ", "), processesColumns)
	equal(t, "rows", res.Rows(), 0)
}

func TestProcessesSQL(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	got := processesSQL([]process{
		{queryID: "q1", user: "default", query: "SELECT 'a\\b'", db: "default", start: start},
		{queryID: "q'2", user: "u", query: "INSERT INTO t VALUES", db: "d", start: start.Add(time.Second / 2)},
	}, start.Add(2*time.Second))
	want := "(SELECT * FROM values('" + processesColumns + "', " +
		`(1, 'default', 'q1', 2, 'SELECT \'a\\b\'', 'default'), ` +
		`(1, 'u', 'q\'2', 1.5, 'INSERT INTO t VALUES', 'd')))`
	equal(t, "two processes", got, want)
	equal(t, "none", processesSQL(nil, start), "(SELECT * FROM values('"+processesColumns+"', (0, '', '', 0, '', '')) WHERE 0)")
}

func TestHoldInsertMatch(t *testing.T) {
	s := &Server{}
	h := s.HoldInserts("sensor_agg")
	for _, tt := range []struct {
		table string
		held  bool
	}{
		{"sensor_agg", true},
		{"db.sensor_agg", true},
		{"`db`.`sensor_agg`", true},
		{`"sensor_agg"`, true},
		{"sensor_agg_2", false},
		{"sensor_agg.x", false},
		{"Sensor_agg", false},
	} {
		equal(t, tt.table+" held", s.procs.holdInsert(tt.table) != nil, tt.held)
	}
	equal(t, "count", h.Count(), 4)
	select {
	case <-h.Held():
	default:
		t.Error("Held not closed after holds")
	}
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(r.(string), "Release") {
				t.Errorf("second HoldInserts while held: panic %v, want one saying to Release", r)
			}
		}()
		s.HoldInserts("other")
	}()
	h.Release()
	equal(t, "held after Release", s.procs.holdInsert("sensor_agg") != nil, false)
	h2 := s.HoldInserts("other")
	equal(t, "held by a new hold", s.procs.holdInsert("db.other") != nil, true)
	s.procs.close()
	select {
	case <-h2.released:
	default:
		t.Error("close did not release the hold")
	}
}
