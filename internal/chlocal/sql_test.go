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
