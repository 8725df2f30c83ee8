package chlocal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
)

func dial(t testing.TB, s *Server, opt ch.Options) *ch.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opt.Address = s.Addr()
	c, err := ch.Dial(ctx, opt)
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr(), err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// exec runs statements that return no rows.
func exec(t testing.TB, c *ch.Client, sql ...string) {
	t.Helper()
	for _, q := range sql {
		if err := c.Do(testCtx(t), ch.Query{Body: q}); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// createDatabase creates database name afresh and drops it when the test ends: the engine is
// one per process, so a database outlives the server of the test that made it (-count=2).
func createDatabase(t testing.TB, s *Server, name string) {
	t.Helper()
	for _, q := range []string{"DROP DATABASE IF EXISTS " + name, "CREATE DATABASE " + name} {
		if _, err := s.Query(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		if _, err := s.Query("DROP DATABASE IF EXISTS " + name); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
}

// scalar runs a query returning one String column and returns its rows.
func strings1(t testing.TB, c *ch.Client, sql string) []string {
	t.Helper()
	var col proto.ColStr
	var out []string
	if err := c.Do(testCtx(t), ch.Query{
		Body:   sql,
		Result: proto.Results{{Data: &col}},
		OnResult: func(ctx context.Context, b proto.Block) error {
			for i := range col.Rows() {
				out = append(out, col.Row(i))
			}
			return nil
		},
	}); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func equal[T comparable](t testing.TB, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// readings are the columns the product writes, n rows from a seed.
type readings struct {
	u64  proto.ColUInt64
	i64  proto.ColInt64
	f64  proto.ColFloat64
	str  proto.ColStr
	dt   proto.ColDateTime
	dt64 *proto.ColDateTime64
	u128 proto.ColUInt128
}

func newReadings(n, seed int) *readings {
	r := &readings{dt64: new(proto.ColDateTime64).WithPrecision(proto.PrecisionMilli)}
	for i := range n {
		v := seed + i
		r.u64.Append(uint64(v))
		r.i64.Append(int64(v) - int64(n/2))
		r.f64.Append(float64(v) / 2)
		r.str.Append(fmt.Sprintf("device-%d", v%1000))
		r.dt.Append(time.Unix(1_700_000_000+int64(v%86_400), 0))
		r.dt64.Append(time.UnixMilli(1_700_000_000_000 + int64(v)))
		r.u128.Append(proto.UInt128{Low: uint64(v), High: uint64(v)})
	}
	return r
}

func (r *readings) input() proto.Input {
	return proto.Input{
		{Name: "u64", Data: &r.u64},
		{Name: "i64", Data: &r.i64},
		{Name: "f64", Data: &r.f64},
		{Name: "s", Data: &r.str},
		{Name: "dt", Data: &r.dt},
		{Name: "dt64", Data: r.dt64},
		{Name: "u128", Data: &r.u128},
	}
}

const readingsColumns = `u64 UInt64, i64 Int64, f64 Float64, s String, dt DateTime, dt64 DateTime64(3), u128 UInt128`

// sums are what a SELECT over readings must return.
type sums struct {
	count, u64, strLen, dt uint64
	i64, dt64              int64
	f64                    float64
	u128                   string
}

func (r *readings) sums() sums {
	var s sums
	u128 := new(big.Int)
	for i := range r.u64.Rows() {
		s.count++
		s.u64 += r.u64.Row(i)
		s.i64 += r.i64.Row(i)
		s.f64 += r.f64.Row(i)
		s.strLen += uint64(len(r.str.Row(i)))
		s.dt += uint64(r.dt.Row(i).Unix())
		s.dt64 += r.dt64.Row(i).UnixMilli()
		v := r.u128.Row(i)
		x := new(big.Int).Lsh(new(big.Int).SetUint64(v.High), 64)
		u128.Add(u128, x.Add(x, new(big.Int).SetUint64(v.Low)))
	}
	s.u128 = u128.String()
	return s
}

func selectSums(t testing.TB, c *ch.Client, table string) sums {
	t.Helper()
	var (
		count, u64, strLen, dt proto.ColUInt64
		i64, dt64              proto.ColInt64
		f64                    proto.ColFloat64
		u128                   proto.ColStr
	)
	if err := c.Do(testCtx(t), ch.Query{
		Body: "SELECT count(), sum(u64), sum(i64), sum(f64), sum(length(s)), " +
			"sum(toUnixTimestamp(dt)), sum(toUnixTimestamp64Milli(dt64)), toString(sum(u128)) FROM " + table,
		Result: proto.Results{
			{Data: &count}, {Data: &u64}, {Data: &i64}, {Data: &f64}, {Data: &strLen},
			{Data: &dt}, {Data: &dt64}, {Data: &u128},
		},
	}); err != nil {
		t.Fatalf("select sums from %s: %v", table, err)
	}
	if count.Rows() != 1 {
		t.Fatalf("select sums from %s: %d rows", table, count.Rows())
	}
	return sums{count: count[0], u64: u64[0], i64: i64[0], f64: f64[0], strLen: strLen[0],
		dt: dt[0], dt64: dt64[0], u128: u128.Row(0)}
}

func TestMillionRows(t *testing.T) {
	s := NewTest(t)
	c := dial(t, s, ch.Options{Compression: ch.CompressionLZ4})
	createDatabase(t, s, "million")
	exec(t, c,
		"CREATE TABLE million.readings ("+readingsColumns+") ENGINE = MergeTree ORDER BY (s, dt)",
	)
	r := newReadings(1_000_000, 0)
	start := time.Now()
	if err := c.Do(testCtx(t), ch.Query{Body: "INSERT INTO million.readings " + r.input().Columns() + " VALUES", Input: r.input()}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	t.Logf("inserted 1,000,000 rows in %v", time.Since(start))
	equal(t, "sums", selectSums(t, c, "million.readings"), r.sums())
}

func TestDeduplicationToken(t *testing.T) {
	s := NewTest(t)
	c := dial(t, s, ch.Options{})
	createDatabase(t, s, "dedup")
	for _, tt := range []struct {
		name, ddl string
	}{
		{"MergeTree", "CREATE TABLE dedup.plain (" + readingsColumns + ") ENGINE = MergeTree ORDER BY (s, dt) " +
			"SETTINGS non_replicated_deduplication_window = 100"},
		{"AggregatingMergeTree", "CREATE TABLE dedup.agg (s String, dt DateTime, " +
			"u64 SimpleAggregateFunction(sum, UInt64), i64 SimpleAggregateFunction(min, Int64), " +
			"f64 SimpleAggregateFunction(max, Float64), u128 SimpleAggregateFunction(sum, UInt128), " +
			"dt64 SimpleAggregateFunction(max, DateTime64(3, 'UTC'))) " +
			"ENGINE = AggregatingMergeTree ORDER BY (s, dt) SETTINGS non_replicated_deduplication_window = 100"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			exec(t, c, tt.ddl)
			table := "dedup.plain"
			if tt.name != "MergeTree" {
				table = "dedup.agg"
			}
			r := newReadings(1000, 0)
			input := r.input()
			for i, col := range input {
				if col.Name == "dt64" {
					// ch-go cannot infer DateTime64 from the header type
					// SimpleAggregateFunction(max, DateTime64(3, 'UTC')), which
					// ClickHouse sends too: keep it from trying.
					input[i].Data = noInfer{col.Data}
				}
			}
			insert := func(token string) {
				t.Helper()
				if err := c.Do(testCtx(t), ch.Query{
					Body:     "INSERT INTO " + table + " " + input.Columns() + " VALUES",
					Input:    input,
					Settings: []ch.Setting{{Key: "insert_deduplication_token", Value: token}},
				}); err != nil {
					t.Fatalf("insert with token %q: %v", token, err)
				}
			}
			count := func() string {
				t.Helper()
				return strings1(t, c, "SELECT toString(count()) FROM "+table)[0]
			}
			insert("batch-1")
			equal(t, "count after the first insert", count(), "1000")
			insert("batch-1")
			equal(t, "count after the same insert and token", count(), "1000")
			insert("batch-2")
			equal(t, "count after a new token", count(), "2000")
			equal(t, "max(dt64)", strings1(t, c, "SELECT toString(max(dt64)) FROM "+table)[0], "2023-11-14 22:13:20.999")
			// The token was set for those queries only.
			if got := strings1(t, c, "SELECT getSetting('insert_deduplication_token')"); got[0] != "" {
				t.Errorf("insert_deduplication_token after the inserts = %q, want empty", got[0])
			}
		})
	}
}

// noInfer hides a column's Infer method from ch-go.
type noInfer struct{ proto.ColInput }

func TestInsertWrongType(t *testing.T) {
	s := NewTest(t)
	c := dial(t, s, ch.Options{})
	createDatabase(t, s, "wrongtype")
	exec(t, c, "CREATE TABLE wrongtype.t (id UInt64, at DateTime) ENGINE = MergeTree ORDER BY id")
	var id proto.ColStr
	var at proto.ColDateTime
	id.Append("not a number")
	at.Append(time.Unix(1_700_000_000, 0))
	err := c.Do(testCtx(t), ch.Query{
		Body:  "INSERT INTO wrongtype.t (id, at) VALUES",
		Input: proto.Input{{Name: "id", Data: &id}, {Name: "at", Data: &at}},
	})
	ex, ok := ch.AsException(err)
	if !ok {
		t.Fatalf("insert String into UInt64: got %v, want a ClickHouse exception", err)
	}
	t.Logf("exception: %v", ex)
	if ex.Code == 0 || !strings.Contains(ex.Message, "DB::Exception") {
		t.Errorf("exception = %+v, want a ClickHouse code and message", ex)
	}
	// The same connection goes on.
	if err := c.Ping(testCtx(t)); err != nil {
		t.Fatalf("ping after the exception: %v", err)
	}
	var ids proto.ColUInt64
	ids.Append(7)
	if err := c.Do(testCtx(t), ch.Query{
		Body:  "INSERT INTO wrongtype.t (id, at) VALUES",
		Input: proto.Input{{Name: "id", Data: &ids}, {Name: "at", Data: &at}},
	}); err != nil {
		t.Fatalf("insert after the exception: %v", err)
	}
	equal(t, "rows", strings1(t, c, "SELECT toString(id) FROM wrongtype.t")[0], "7")
}

func TestExceptions(t *testing.T) {
	s := NewTest(t)
	c := dial(t, s, ch.Options{})
	for _, tt := range []struct {
		sql  string
		code proto.Error
	}{
		{"SELECT * FROM no_such_db.no_such_table", proto.ErrUnknownDatabase},
		{"SELECT * FROM no_such_table", proto.ErrUnknownTable},
		{"SELEKT 1", proto.ErrSyntaxError},
		{"SELECT throwIf(1, 'boom')", proto.ErrFunctionThrowIfValueIsNonZero},
		{"INSERT INTO no_such_table (a) VALUES", proto.ErrUnknownTable},
	} {
		var a proto.ColUInt8
		in := proto.Input{{Name: "a", Data: &a}}
		if !strings.HasPrefix(tt.sql, "INSERT") {
			in = nil
		} else {
			a.Append(1)
		}
		err := c.Do(testCtx(t), ch.Query{Body: tt.sql, Input: in})
		ex, ok := ch.AsException(err)
		if !ok {
			t.Errorf("%s: got %v, want exception %v", tt.sql, err, tt.code)
			continue
		}
		if ex.Code != tt.code {
			t.Errorf("%s: code %v (%s), want %v", tt.sql, ex.Code, ex.Message, tt.code)
		}
		if in != nil {
			// After an INSERT's exception ch-go may still send the input: its sending
			// goroutine waits for the table's header on a channel that the receiving one
			// closes when it returns the exception, and a receive from a closed channel
			// goes ahead (ch-go v0.74.0, Client.Do). The block then reaches the server as
			// the connection's next packet, which it does not expect (chlocal answers
			// UNKNOWN_PACKET_FROM_CLIENT), so a client cannot count on the connection after
			// a failed INSERT; pipelined's writer closes it. The server is checked on a new
			// one. (Seen once in CI under -race, 2026-12-07.)
			c.Close()
			c = dial(t, s, ch.Options{})
		}
		if err := c.Ping(testCtx(t)); err != nil {
			t.Fatalf("ping after %s: %v", tt.sql, err)
		}
	}
}

func TestGarbageClient(t *testing.T) {
	s := NewTest(t)
	good := dial(t, s, ch.Options{})
	for _, garbage := range [][]byte{
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		{0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},                 // hello with a huge name
		{0x00, 0x02, 'c', 'h', 0x01, 0x02, 0x90, 0xa8, 0x03, 0x00, 0x00, 0x00, 0x07}, // hello, then an unknown packet
		{0x01, 0x00},
	} {
		nc, err := net.DialTimeout("tcp", s.Addr(), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write(garbage); err != nil {
			t.Fatalf("write garbage: %v", err)
		}
		_ = nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		// The server answers at most a hello and an exception, then closes.
		_, err = io.Copy(io.Discard, nc)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("garbage %q: connection still open", garbage)
		}
		_ = nc.Close()
		if err := good.Ping(testCtx(t)); err != nil {
			t.Fatalf("ping of another client after garbage %q: %v", garbage, err)
		}
	}
	equal(t, "select after garbage", strings1(t, good, "SELECT 'ok'")[0], "ok")
}

func TestCompression(t *testing.T) {
	s := NewTest(t)
	createDatabase(t, s, "compression")
	for _, tt := range []struct {
		name string
		c    ch.Compression
	}{
		{"Disabled", ch.CompressionDisabled},
		{"LZ4", ch.CompressionLZ4},
		{"ZSTD", ch.CompressionZSTD},
		{"None", ch.CompressionNone},
		{"LZ4HC", ch.CompressionLZ4HC},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, s, ch.Options{Compression: tt.c, Database: "compression"})
			table := "r_" + strings.ToLower(tt.name)
			exec(t, c, "CREATE TABLE "+table+" ("+readingsColumns+") ENGINE = MergeTree ORDER BY u64")
			// Several blocks in, several blocks out (the engine's blocks are
			// 65409 rows at most).
			all := newReadings(0, 0)
			for i := range 3 {
				r := newReadings(50_000, i*50_000)
				if err := c.Do(testCtx(t), ch.Query{Body: r.input().Into(table), Input: r.input()}); err != nil {
					t.Fatalf("insert: %v", err)
				}
				for j := range r.u64.Rows() {
					all.u64.Append(r.u64.Row(j))
					all.i64.Append(r.i64.Row(j))
					all.f64.Append(r.f64.Row(j))
					all.str.Append(r.str.Row(j))
					all.dt.Append(r.dt.Row(j))
					all.dt64.Append(r.dt64.Row(j))
					all.u128.Append(r.u128.Row(j))
				}
			}
			equal(t, "sums", selectSums(t, c, table), all.sums())
			// Read the rows back in several blocks.
			got := newReadings(0, 0)
			res := proto.Results{
				{Name: "u64", Data: &got.u64}, {Name: "s", Data: &got.str}, {Name: "dt64", Data: got.dt64},
			}
			n, blocks := 0, 0
			if err := c.Do(testCtx(t), ch.Query{
				Body:   "SELECT u64, s, dt64 FROM " + table + " ORDER BY u64",
				Result: res,
				OnResult: func(ctx context.Context, b proto.Block) error {
					for i := range got.u64.Rows() {
						if got.u64.Row(i) != uint64(n) || got.str.Row(i) != all.str.Row(n) || !got.dt64.Row(i).Equal(all.dt64.Row(n)) {
							return fmt.Errorf("row %d: %d %q %v", n, got.u64.Row(i), got.str.Row(i), got.dt64.Row(i))
						}
						n++
					}
					blocks++
					return nil
				},
			}); err != nil {
				t.Fatalf("select rows: %v", err)
			}
			equal(t, "rows read back", n, all.u64.Rows())
			if blocks < 2 {
				t.Errorf("rows came in %d blocks, want several", blocks)
			}
		})
	}
}

func TestEmptyResultHasHeader(t *testing.T) {
	s := NewTest(t)
	c := dial(t, s, ch.Options{})
	createDatabase(t, s, "empty")
	exec(t, c, "CREATE TABLE empty.t (id UInt64, name LowCardinality(String)) ENGINE = MergeTree ORDER BY id")
	var res proto.Results
	if err := c.Do(testCtx(t), ch.Query{Body: "SELECT id, name FROM empty.t FORMAT JSON", Result: res.Auto()}); err != nil {
		t.Fatalf("select: %v", err)
	}
	if len(res) != 2 || res[0].Name != "id" || res[1].Name != "name" || res.Rows() != 0 {
		t.Fatalf("columns %+v, want id and name with no rows", res)
	}
	equal(t, "type of name", string(res[1].Data.Type()), "LowCardinality(String)")
}

func TestAutoResult(t *testing.T) {
	s := NewTest(t)
	c := dial(t, s, ch.Options{Compression: ch.CompressionZSTD})
	var res proto.Results
	if err := c.Do(testCtx(t), ch.Query{
		Body: `SELECT number AS n, toString(number) AS s, toLowCardinality(toString(number % 3)) AS lc,
			if(number % 2 = 0, NULL, number) AS nullable, range(number % 4) AS arr,
			map('k', toString(number)) AS m, toDateTime64(number, 3, 'UTC') AS dt64,
			toUUID('00000000-0000-0000-0000-000000000001') AS uuid, CAST('b', 'Enum8(\'a\' = 1, \'b\' = 2)') AS e,
			toDecimal64(number, 2) AS dec FROM numbers(100000)`,
		Result: res.Auto(),
		OnResult: func(ctx context.Context, b proto.Block) error {
			return nil
		},
	}); err != nil {
		t.Fatalf("select: %v", err)
	}
	var names []string
	for _, r := range res {
		names = append(names, r.Name+" "+string(r.Data.Type()))
	}
	equal(t, "columns", strings.Join(names, ", "), "n UInt64, s String, lc LowCardinality(String), nullable Nullable(UInt64), "+
		"arr Array(UInt8), m Map(String, String), dt64 DateTime64(3, 'UTC'), uuid UUID, e Enum8('a' = 1, 'b' = 2), dec Decimal64")
}

func TestQuerySettings(t *testing.T) {
	s := NewTest(t)
	c := dial(t, s, ch.Options{Settings: []ch.Setting{{Key: "max_block_size", Value: "1000"}}})
	get := func(settings ...ch.Setting) string {
		var v proto.ColStr
		if err := c.Do(testCtx(t), ch.Query{
			Body:     "SELECT getSetting('max_threads') || ' ' || getSetting('max_block_size')",
			Settings: settings,
			Result:   proto.Results{{Data: &v}},
		}); err != nil {
			t.Fatalf("select: %v", err)
		}
		return v.Row(0)
	}
	def := get()
	if !strings.HasSuffix(def, " 1000") {
		t.Errorf("client setting max_block_size: got %q", def)
	}
	equal(t, "with max_threads = 3", get(ch.Setting{Key: "max_threads", Value: "3"}), "3 1000")
	equal(t, "after the query", get(), def)
	err := c.Do(testCtx(t), ch.Query{Body: "SELECT 1", Settings: []ch.Setting{{Key: "no_such_setting", Value: "1"}}})
	if ex, ok := ch.AsException(err); !ok || ex.Code != proto.ErrUnknownSetting {
		t.Errorf("unknown setting: %v, want UNKNOWN_SETTING", err)
	}
}

func TestDatabase(t *testing.T) {
	s := NewTest(t)
	createDatabase(t, s, "db_a")
	for _, q := range []string{
		"CREATE TABLE db_a.t (v String) ENGINE = Memory",
		"INSERT INTO db_a.t VALUES ('in a')",
	} {
		if _, err := s.Query(q); err != nil {
			t.Fatal(err)
		}
	}
	a := dial(t, s, ch.Options{Database: "db_a"})
	def := dial(t, s, ch.Options{})
	// Interleaved: each connection keeps its database.
	equal(t, "t in db_a", strings1(t, a, "SELECT v FROM t")[0], "in a")
	equal(t, "current database of another connection", strings1(t, def, "SELECT currentDatabase()")[0], "default")
	equal(t, "current database", strings1(t, a, "SELECT currentDatabase()")[0], "db_a")
	exec(t, def, "USE db_a")
	equal(t, "after USE", strings1(t, def, "SELECT v FROM t")[0], "in a")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := ch.Dial(ctx, ch.Options{Address: s.Addr(), Database: "no_such_db"})
	if ex, ok := ch.AsException(err); !ok || ex.Code != proto.ErrUnknownDatabase {
		t.Errorf("dial into a missing database: %v, want UNKNOWN_DATABASE", err)
	}
}

func TestServers(t *testing.T) {
	a := NewTest(t)
	b, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if a.Addr() == b.Addr() || a.DataDir() != b.DataDir() {
		t.Errorf("servers: addresses %s, %s; data %s, %s: want two addresses, one engine", a.Addr(), b.Addr(), a.DataDir(), b.DataDir())
	}
	cb := dial(t, b, ch.Options{})
	if _, err := a.Query("CREATE TABLE IF NOT EXISTS default.shared (v UInt8) ENGINE = Memory"); err != nil {
		t.Fatal(err)
	}
	equal(t, "table made through the other server", strings1(t, cb, "SELECT toString(count()) FROM system.tables WHERE database = 'default' AND name = 'shared'")[0], "1")
	if _, err := New(Config{DataDir: t.TempDir()}); err == nil {
		t.Error("a server on another data directory: no error")
	}
	if err := b.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if err := cb.Ping(testCtx(t)); err == nil {
		t.Error("ping through a closed server: no error")
	}
	if err := b.Start(); err == nil {
		t.Error("start after close: no error")
	}
	ca := dial(t, a, ch.Options{})
	if err := ca.Ping(testCtx(t)); err != nil {
		t.Errorf("ping the other server: %v", err)
	}
}

func TestLibPath(t *testing.T) {
	t.Setenv("CHDB_LIB_PATH", filepath.Join(t.TempDir(), "libchdb.so"))
	if _, err := LibPath(); !errors.Is(err, ErrNoLibrary) {
		t.Errorf("missing CHDB_LIB_PATH file: %v, want ErrNoLibrary", err)
	}
	t.Setenv("CHDB_LIB_PATH", "")
	t.Setenv("PIPELINED_CACHE", t.TempDir())
	_, err := LibPath()
	if !errors.Is(err, ErrNoLibrary) || !strings.Contains(err.Error(), "make chdb") {
		t.Errorf("empty cache: %v, want ErrNoLibrary saying `make chdb`", err)
	}
}

// TestGoSignals checks that the Go runtime still owns its signals with the
// engine loaded: a nil dereference is a recoverable panic, not a crash.
func TestGoSignals(t *testing.T) {
	s := NewTest(t)
	if _, err := s.Query("SELECT 1"); err != nil {
		t.Fatal(err)
	}
	var p *int
	func() {
		defer func() {
			if recover() == nil {
				t.Error("nil dereference did not panic")
			}
		}()
		_ = *p
	}()
}

func TestConcurrentClients(t *testing.T) {
	s := NewTest(t)
	admin := dial(t, s, ch.Options{})
	createDatabase(t, s, "concurrent")
	exec(t, admin, "CREATE TABLE concurrent.r ("+readingsColumns+") ENGINE = MergeTree ORDER BY u64")
	const clients, inserts, rows = 4, 5, 10_000
	errs := make(chan error, clients)
	for i := range clients {
		c := dial(t, s, ch.Options{Compression: ch.CompressionLZ4})
		go func() {
			for j := range inserts {
				r := newReadings(rows, (i*inserts+j)*rows)
				if err := c.Do(testCtx(t), ch.Query{Body: "INSERT INTO concurrent.r " + r.input().Columns() + " VALUES", Input: r.input()}); err != nil {
					errs <- fmt.Errorf("client %d insert %d: %w", i, j, err)
					return
				}
				if err := c.Do(testCtx(t), ch.Query{Body: "SELECT count() FROM concurrent.r", Result: proto.Results{{Data: new(proto.ColUInt64)}}}); err != nil {
					errs <- fmt.Errorf("client %d select %d: %w", i, j, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	equal(t, "rows", strings1(t, admin, "SELECT toString(count()) FROM concurrent.r")[0], fmt.Sprint(clients*inserts*rows))
}

// TestInsertHeaderFollowsColumns checks the engine's insert header cache: an INSERT's header is
// kept across reads and INSERTs, and a statement that changes columns makes the next INSERT
// describe the table again.
func TestInsertHeaderFollowsColumns(t *testing.T) {
	s := NewTest(t)
	c := dial(t, s, ch.Options{})
	createDatabase(t, s, "hdr")
	exec(t, c, "CREATE TABLE hdr.t (id UInt64) ENGINE = MergeTree ORDER BY id")
	header := func() string {
		t.Helper()
		h, err := insertHeader(s.eng, "default", insert{Table: "hdr.t"})
		if err != nil {
			t.Fatal(err)
		}
		var cols []string
		for _, col := range h.Cols {
			cols = append(cols, col.Name+" "+col.Type)
		}
		return strings.Join(cols, ", ")
	}
	key := "default\x00true\x00DESCRIBE TABLE hdr.t"
	kept := func() bool {
		_, _, ok := s.eng.header(key)
		return ok
	}
	equal(t, "header", header(), "id UInt64")
	equal(t, "kept after the first INSERT's header", kept(), true)
	var ids proto.ColUInt64
	ids.Append(1)
	if err := c.Do(testCtx(t), ch.Query{Body: "INSERT INTO hdr.t VALUES", Input: proto.Input{{Name: "id", Data: &ids}}}); err != nil {
		t.Fatal(err)
	}
	equal(t, "rows", strings1(t, c, "SELECT toString(count()) FROM hdr.t")[0], "1")
	equal(t, "kept across an INSERT and a SELECT", kept(), true)

	exec(t, c, "ALTER TABLE hdr.t ADD COLUMN note String")
	equal(t, "kept after ALTER TABLE", kept(), false)
	equal(t, "header after ALTER TABLE", header(), "id UInt64, note String")

	if _, err := s.Query("DROP TABLE hdr.t"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Query("CREATE TABLE hdr.t (id String, at DateTime) ENGINE = MergeTree ORDER BY id"); err != nil {
		t.Fatal(err)
	}
	equal(t, "header after the table was made again", header(), "id String, at DateTime")
}
