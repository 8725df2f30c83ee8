package chlocal

import (
	"strings"
)

// A tiny ClickHouse SQL tokenizer: enough to classify a statement, find the
// parts of an INSERT and a trailing FORMAT clause. The engine parses the SQL
// for real; this only decides how the server talks to the client.

type tokenKind uint8

const (
	tokWord   tokenKind = iota // keyword, identifier or number
	tokQuoted                  // `identifier` or "identifier"
	tokString                  // 'literal'
	tokPunct                   // any other single character
)

type token struct {
	kind       tokenKind
	start, end int // byte offsets in the statement
}

// tokenize splits q into tokens, skipping whitespace and comments. An
// unterminated quote or comment runs to the end of q.
func tokenize(q string) []token {
	var toks []token
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '-' && strings.HasPrefix(q[i:], "--"), c == '#':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				return toks
			}
			i += j + 1
		case c == '/' && strings.HasPrefix(q[i:], "/*"):
			j := strings.Index(q[i+2:], "*/")
			if j < 0 {
				return toks
			}
			i += j + 4
		case c == '\'' || c == '"' || c == '`':
			j := quoteEnd(q, i)
			kind := tokQuoted
			if c == '\'' {
				kind = tokString
			}
			toks = append(toks, token{kind, i, j})
			i = j
		case isWordByte(c):
			j := i + 1
			for j < len(q) && isWordByte(q[j]) {
				j++
			}
			toks = append(toks, token{tokWord, i, j})
			i = j
		default:
			toks = append(toks, token{tokPunct, i, i + 1})
			i++
		}
	}
	return toks
}

// quoteEnd returns the offset after the quoted token starting at q[i],
// honoring backslash escapes and doubled quotes.
func quoteEnd(q string, i int) int {
	quote := q[i]
	for j := i + 1; j < len(q); j++ {
		switch q[j] {
		case '\\':
			j++
		case quote:
			if j+1 < len(q) && q[j+1] == quote {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(q)
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// is reports whether t is the keyword kw (case-insensitive).
func (t token) is(q, kw string) bool {
	return t.kind == tokWord && strings.EqualFold(q[t.start:t.end], kw)
}

func (t token) isPunct(q string, c byte) bool {
	return t.kind == tokPunct && q[t.start] == c
}

// unquote returns the name of an identifier token.
func (t token) unquote(q string) string {
	s := q[t.start:t.end]
	if t.kind != tokQuoted || len(s) < 2 {
		return s
	}
	quote := s[0]
	s = s[1 : len(s)-1]
	if !strings.ContainsAny(s, `\`+string(quote)) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s):
			i++
		case s[i] == quote && i+1 < len(s) && s[i+1] == quote:
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// statement is a client query as the server sees it.
type statement struct {
	q    string
	toks []token
}

func parseStatement(q string) statement {
	return statement{q: q, toks: tokenize(q)}
}

// keyword returns the first word of the statement, upper-cased.
func (s statement) keyword() string {
	for _, t := range s.toks {
		if t.isPunct(s.q, '(') {
			continue // "(SELECT ...)"
		}
		if t.kind == tokWord {
			return strings.ToUpper(s.q[t.start:t.end])
		}
		return ""
	}
	return ""
}

// useDatabase returns the database of a "USE db" statement.
func (s statement) useDatabase() (string, bool) {
	if len(s.toks) < 2 || !s.toks[0].is(s.q, "USE") {
		return "", false
	}
	t := s.toks[1]
	if t.kind != tokWord && t.kind != tokQuoted {
		return "", false
	}
	return t.unquote(s.q), true
}

// withoutFormat returns the statement without a trailing "FORMAT name"
// clause: over the native protocol the server always sends Data blocks
// and the format is the client's business.
func (s statement) withoutFormat() string {
	toks := s.toks
	for len(toks) > 0 && toks[len(toks)-1].isPunct(s.q, ';') {
		toks = toks[:len(toks)-1]
	}
	depth := 0
	for i, t := range toks {
		switch {
		case t.isPunct(s.q, '('):
			depth++
		case t.isPunct(s.q, ')'):
			depth--
		case depth == 0 && t.is(s.q, "FORMAT") && i+1 < len(toks) && toks[i+1].kind == tokWord:
			next := i + 2
			if next == len(toks) || toks[next].is(s.q, "SETTINGS") {
				return s.q[:t.start] + s.q[toks[i+1].end:]
			}
		}
	}
	return s.q
}

// insert is an INSERT whose data comes from the client in Data packets.
type insert struct {
	Table    string // table as written, e.g. `db.t` or "t"
	Columns  string // column list as written, without parentheses; "" means all
	Settings string // "SETTINGS ..." clause as written, or ""
}

// insertWithData parses an INSERT that expects the client to send data:
//
//	INSERT INTO [TABLE] [db.]table [(columns)] [SETTINGS ...] VALUES|FORMAT name
//
// with nothing after VALUES or the format name. Every other statement,
// including INSERT ... SELECT and an INSERT with inline data, runs in the
// engine as it is.
func (s statement) insertWithData() (insert, bool) {
	q, toks := s.q, s.toks
	var ins insert
	i := 0
	next := func() (token, bool) {
		if i >= len(toks) {
			return token{}, false
		}
		i++
		return toks[i-1], true
	}
	if t, ok := next(); !ok || !t.is(q, "INSERT") {
		return ins, false
	}
	if t, ok := next(); !ok || !t.is(q, "INTO") {
		return ins, false
	}
	t, ok := next()
	if ok && t.is(q, "TABLE") {
		t, ok = next()
	}
	if !ok || t.kind != tokWord && t.kind != tokQuoted || t.is(q, "FUNCTION") {
		return ins, false
	}
	tableStart, tableEnd := t.start, t.end
	for i+1 < len(toks) && toks[i].isPunct(q, '.') && toks[i+1].kind != tokPunct && toks[i+1].kind != tokString {
		tableEnd = toks[i+1].end
		i += 2
	}
	ins.Table = q[tableStart:tableEnd]
	if i < len(toks) && toks[i].isPunct(q, '(') {
		depth, open := 0, toks[i].end
		for ; i < len(toks); i++ {
			if toks[i].isPunct(q, '(') {
				depth++
			} else if toks[i].isPunct(q, ')') {
				if depth--; depth == 0 {
					break
				}
			}
		}
		if i == len(toks) {
			return ins, false
		}
		ins.Columns = strings.TrimSpace(q[open:toks[i].start])
		i++
	}
	if i < len(toks) && toks[i].is(q, "SETTINGS") {
		start := toks[i].start
		for i < len(toks) && !toks[i].is(q, "VALUES") && !toks[i].is(q, "FORMAT") {
			i++
		}
		if i == len(toks) {
			return ins, false
		}
		ins.Settings = strings.TrimSpace(q[start:toks[i].start])
	}
	t, ok = next()
	switch {
	case ok && t.is(q, "VALUES"):
	case ok && t.is(q, "FORMAT"):
		if t, ok = next(); !ok || t.kind != tokWord {
			return ins, false
		}
	default:
		return ins, false
	}
	// Inline data follows? ClickHouse reads it as the data.
	if rest := strings.TrimSpace(q[t.end:]); rest != "" && rest != ";" {
		return ins, false
	}
	return ins, true
}

// replaceTable returns the statement with every reference to the table
// db.table replaced by sub, a subquery in parentheses, and how many it
// replaced. Names match exactly, quoted or not: ClickHouse's database and
// table names are case-sensitive. A table of FROM or JOIN without an alias
// of its own gets table as its alias, so that columns qualified with it
// still resolve; elsewhere (DESCRIBE TABLE) an alias would not parse. A
// column qualified as db.table.column becomes table.column.
func (s statement) replaceTable(db, table, sub string) (string, int) {
	q, toks := s.q, s.toks
	var b strings.Builder
	n, last := 0, 0
	for i := 0; i+2 < len(toks); i++ {
		if !toks[i].isName(q, db) || !toks[i+1].isPunct(q, '.') || !toks[i+2].isName(q, table) {
			continue
		}
		hasPrev, hasNext := i > 0, i+3 < len(toks)
		if hasPrev && toks[i-1].isPunct(q, '.') || hasNext && toks[i+3].isPunct(q, '(') {
			continue // x.db.table, or a function db.table()
		}
		name := q[toks[i+2].start:toks[i+2].end]
		repl := sub
		switch {
		case hasNext && toks[i+3].isPunct(q, '.'):
			repl = name
		case hasPrev && (toks[i-1].is(q, "FROM") || toks[i-1].is(q, "JOIN")) && !(hasNext && startsAlias(q, toks[i+3])):
			repl = sub + " AS " + name
		}
		b.WriteString(q[last:toks[i].start])
		b.WriteString(repl)
		last = toks[i+2].end
		n++
		i += 2
	}
	if n == 0 {
		return q, 0
	}
	b.WriteString(q[last:])
	return b.String(), n
}

// isName reports whether t is the identifier name, quoted or not.
func (t token) isName(q, name string) bool {
	return (t.kind == tokWord || t.kind == tokQuoted) && t.unquote(q) == name
}

// afterTable are the keywords that may follow a table in FROM or JOIN, as
// the engine's syntax errors list them: any other word there is an alias.
var afterTable = map[string]bool{
	"FINAL": true, "SAMPLE": true, "ARRAY": true, "LEFT": true, "RIGHT": true, "INNER": true,
	"FULL": true, "CROSS": true, "OUTER": true, "GLOBAL": true, "LOCAL": true, "NATURAL": true,
	"ANY": true, "ALL": true, "ASOF": true, "SEMI": true, "ANTI": true, "ONLY": true,
	"PASTE": true, "JOIN": true, "ON": true, "USING": true, "PREWHERE": true, "WHERE": true,
	"GROUP": true, "WITH": true, "HAVING": true, "WINDOW": true, "QUALIFY": true, "ORDER": true,
	"LIMIT": true, "OFFSET": true, "FETCH": true, "SETTINGS": true, "UNION": true,
	"EXCEPT": true, "INTERSECT": true, "INTO": true, "FORMAT": true, "PARALLEL": true,
}

// startsAlias reports whether t, the token after a table, begins its alias.
func startsAlias(q string, t token) bool {
	switch t.kind {
	case tokQuoted:
		return true
	case tokWord:
		return t.is(q, "AS") || !afterTable[strings.ToUpper(q[t.start:t.end])]
	}
	return false
}
