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
