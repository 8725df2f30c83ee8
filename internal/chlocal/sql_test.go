package chlocal

import (
	"testing"

	"github.com/ClickHouse/ch-go/proto"
)

func TestInsertWithData(t *testing.T) {
	for _, tt := range []struct {
		sql  string
		want insert
		ok   bool
	}{
		{`INSERT INTO t VALUES`, insert{Table: "t"}, true},
		{`insert into "t" ("a","b") values`, insert{Table: `"t"`, Columns: `"a","b"`}, true},
		{"INSERT INTO TABLE db.`my t` (a, b) FORMAT Native", insert{Table: "db.`my t`", Columns: "a, b"}, true},
		{`INSERT INTO db.t (a) SETTINGS async_insert = 1 VALUES ;`, insert{Table: "db.t", Columns: "a", Settings: "SETTINGS async_insert = 1"}, true},
		{"-- comment\nINSERT /* x */ INTO t (a, (b)) VALUES\n", insert{Table: "t", Columns: "a, (b)"}, true},
		{`INSERT INTO t VALUES (1, 'a')`, insert{}, false},
		{`INSERT INTO t FORMAT CSV 1,2`, insert{}, false},
		{`INSERT INTO t SELECT * FROM u`, insert{}, false},
		{`INSERT INTO FUNCTION file('x') VALUES`, insert{}, false},
		{`INSERT INTO t (a VALUES`, insert{}, false},
		{`SELECT 1`, insert{}, false},
		{`INSERT t VALUES`, insert{}, false},
	} {
		got, ok := parseStatement(tt.sql).insertWithData()
		if ok != tt.ok || ok && got != tt.want {
			t.Errorf("insertWithData(%q) = %+v, %v; want %+v, %v", tt.sql, got, ok, tt.want, tt.ok)
		}
	}
}

func TestWithoutFormat(t *testing.T) {
	for _, tt := range []struct{ sql, want string }{
		{"SELECT 1 FORMAT JSON", "SELECT 1 "},
		{"SELECT 1 FORMAT JSON;", "SELECT 1 ;"},
		{"SELECT 1 FORMAT TSV SETTINGS max_threads = 1", "SELECT 1  SETTINGS max_threads = 1"},
		{"SELECT format FROM t", "SELECT format FROM t"},
		{"SELECT (SELECT 1 FORMAT JSON)", "SELECT (SELECT 1 FORMAT JSON)"},
		{"SELECT 'FORMAT JSON'", "SELECT 'FORMAT JSON'"},
		{"SELECT format(x, y) FROM t", "SELECT format(x, y) FROM t"},
	} {
		if got := parseStatement(tt.sql).withoutFormat(); got != tt.want {
			t.Errorf("withoutFormat(%q) = %q, want %q", tt.sql, got, tt.want)
		}
	}
}

func TestKeywordAndUse(t *testing.T) {
	for _, tt := range []struct{ sql, kw, db string }{
		{"  select 1", "SELECT", ""},
		{"(SELECT 1) UNION ALL (SELECT 2)", "SELECT", ""},
		{"/* hi */ WITH 1 AS x SELECT x", "WITH", ""},
		{"USE db1", "USE", "db1"},
		{"use `my db`", "USE", "my db"},
		{"'x'", "", ""},
		{"", "", ""},
	} {
		st := parseStatement(tt.sql)
		db, _ := st.useDatabase()
		if st.keyword() != tt.kw || db != tt.db {
			t.Errorf("%q: keyword %q, use %q; want %q, %q", tt.sql, st.keyword(), db, tt.kw, tt.db)
		}
	}
}

func TestSettingsSQL(t *testing.T) {
	set, reset, err := settingsSQL(nil)
	if set != "" || reset != "" || err != nil {
		t.Errorf("no settings: %q %q %v", set, reset, err)
	}
	set, reset, err = settingsSQL([]proto.Setting{
		{Key: "insert_deduplication_token", Value: `a'b\c`},
		{Key: "old", Value: "1", Obsolete: true},
		{Key: "max_threads", Value: "2"},
	})
	if want := `SET insert_deduplication_token = 'a\'b\\c', max_threads = '2'`; set != want || err != nil {
		t.Errorf("set = %q, %v; want %q", set, err, want)
	}
	if want := `SET insert_deduplication_token = DEFAULT, max_threads = DEFAULT`; reset != want {
		t.Errorf("reset = %q, want %q", reset, want)
	}
	if _, _, err := settingsSQL([]proto.Setting{{Key: "x = 1; DROP TABLE t", Value: "1"}}); err == nil {
		t.Error("a setting name with SQL in it: no error")
	}
}

func TestReplaceTable(t *testing.T) {
	for _, tt := range []struct {
		sql, want string
		n         int
	}{
		{"SELECT * FROM system.processes", "SELECT * FROM (S) AS processes", 1},
		{"SELECT count() FROM system.processes WHERE x = 1", "SELECT count() FROM (S) AS processes WHERE x = 1", 1},
		{"SELECT * FROM system.processes AS p", "SELECT * FROM (S) AS p", 1},
		{"SELECT * FROM system.processes p WHERE 1", "SELECT * FROM (S) p WHERE 1", 1},
		{"SELECT * FROM system.processes `p`", "SELECT * FROM (S) `p`", 1},
		{"SELECT * FROM `system`.`processes` LIMIT 1", "SELECT * FROM (S) AS `processes` LIMIT 1", 1},
		{`SELECT * FROM "system" . "processes"`, `SELECT * FROM (S) AS "processes"`, 1},
		{"select * from system.processes final", "select * from (S) AS processes final", 1},
		{"SELECT * FROM t JOIN system.processes USING (x)", "SELECT * FROM t JOIN (S) AS processes USING (x)", 1},
		{"SELECT (SELECT count() FROM system.processes), * FROM system.processes;", "SELECT (SELECT count() FROM (S) AS processes), * FROM (S) AS processes;", 2},
		{"SELECT system.processes.query_id FROM system.processes", "SELECT processes.query_id FROM (S) AS processes", 2},
		{"DESCRIBE TABLE system.processes", "DESCRIBE TABLE (S)", 1},
		{"SELECT 1 IN system.processes", "SELECT 1 IN (S)", 1},
		{"SELECT 'system.processes'", "SELECT 'system.processes'", 0},
		{"SELECT 1 -- FROM system.processes", "SELECT 1 -- FROM system.processes", 0},
		{"SELECT 1 /* system.processes */", "SELECT 1 /* system.processes */", 0},
		{"SELECT * FROM System.processes", "SELECT * FROM System.processes", 0},
		{"SELECT * FROM system.Processes", "SELECT * FROM system.Processes", 0},
		{"SELECT * FROM system.processes_2", "SELECT * FROM system.processes_2", 0},
		{"SELECT * FROM system.processes2", "SELECT * FROM system.processes2", 0},
		{"SELECT * FROM x.system.processes", "SELECT * FROM x.system.processes", 0},
		{"SELECT system.processes(1)", "SELECT system.processes(1)", 0},
		{"SELECT * FROM system.tables", "SELECT * FROM system.tables", 0},
		{"system.processes", "(S)", 1},
	} {
		got, n := parseStatement(tt.sql).replaceTable("system", "processes", "(S)")
		if got != tt.want || n != tt.n {
			t.Errorf("replaceTable(%q) = %q, %d; want %q, %d", tt.sql, got, n, tt.want, tt.n)
		}
	}
}
