package chlocal

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/ebitengine/purego"
)

// The engine is chDB's embedded ClickHouse, loaded with purego exactly as
// chdb-go does. We bind the C API ourselves instead of importing chdb-go
// because chdb-go dlopens the library in a package init and panics when it
// is missing: every test binary importing chlocal would crash before a test
// could report how to get the library.
//
// chDB runs one embedded server per process: its data directory is fixed by
// the first connect and it cannot be restarted once shut down. So the engine
// is a process-wide singleton that lives until the process exits, and every
// Server of the process shares it. All queries go through one chDB
// connection (one session) and are serialized by engine.mu.

// chdbAPI holds the C functions of libchdb.so that we use.
type chdbAPI struct {
	connect           func(argc int32, argv **byte) *unsafe.Pointer
	queryN            func(conn unsafe.Pointer, query *byte, queryLen uintptr, format *byte, formatLen uintptr) unsafe.Pointer
	destroyResult     func(res unsafe.Pointer)
	resultBuffer      func(res unsafe.Pointer) *byte
	resultLength      func(res unsafe.Pointer) uintptr
	resultRowsRead    func(res unsafe.Pointer) uint64
	resultBytesRead   func(res unsafe.Pointer) uint64
	resultRowsWritten func(res unsafe.Pointer) uint64
	resultBytesWrote  func(res unsafe.Pointer) uint64
	resultElapsed     func(res unsafe.Pointer) float64
	resultError       func(res unsafe.Pointer) *byte
	signalHandlers    func(enabled int32)
}

func (a *chdbAPI) load(lib uintptr) error {
	for _, f := range []struct {
		ptr  any
		name string
	}{
		{&a.connect, "chdb_connect"},
		{&a.queryN, "chdb_query_n"},
		{&a.destroyResult, "chdb_destroy_query_result"},
		{&a.resultBuffer, "chdb_result_buffer"},
		{&a.resultLength, "chdb_result_length"},
		{&a.resultRowsRead, "chdb_result_rows_read"},
		{&a.resultBytesRead, "chdb_result_bytes_read"},
		{&a.resultRowsWritten, "chdb_result_rows_written"},
		{&a.resultBytesWrote, "chdb_result_bytes_written"},
		{&a.resultElapsed, "chdb_result_elapsed"},
		{&a.resultError, "chdb_result_error"},
		{&a.signalHandlers, "chdb_set_signal_handlers_enabled"},
	} {
		sym, err := purego.Dlsym(lib, f.name)
		if err != nil {
			return fmt.Errorf("symbol %q (is libchdb.so chDB %s?): %w", f.name, ChdbVersion, err)
		}
		purego.RegisterFunc(f.ptr, sym)
	}
	return nil
}

// engine is the process-wide chDB session.
type engine struct {
	mu   sync.Mutex // serializes queries; guards db and the header cache
	api  chdbAPI
	conn unsafe.Pointer // chdb_connection, in C memory
	lib  string
	dir  string
	db   string // current database of the session
	sigs signalGuard
	ver  serverVersion

	// Headers (of INSERTs, and of SELECTs without rows) by database and DESCRIBE statement,
	// as a server keeps tables' columns in memory rather than planning a DESCRIBE for every
	// INSERT (about 4 ms each here). A statement that may change columns empties it and moves
	// hdrGen on.
	hdrs   map[string]block
	hdrGen uint64
}

var global struct {
	mu  sync.Mutex
	eng *engine
}

// openEngine returns the process-wide engine, starting it on first use with
// the library at libPath ("" means LibPath()) and the data directory dir
// ("" means a directory owned by the process, see defaultDataDir). Once it
// runs, an explicit libPath or dir must match it.
func openEngine(libPath, dir string) (*engine, error) {
	global.mu.Lock()
	defer global.mu.Unlock()
	if e := global.eng; e != nil {
		if dir != "" && !samePath(dir, e.dir) {
			return nil, fmt.Errorf("data directory %q: chDB already runs on %q in this process "+
				"(one engine per process)", dir, e.dir)
		}
		if libPath != "" && !samePath(libPath, e.lib) {
			return nil, fmt.Errorf("library %q: chDB already loaded from %q in this process", libPath, e.lib)
		}
		return e, nil
	}
	if libPath == "" {
		p, err := LibPath()
		if err != nil {
			return nil, err
		}
		libPath = p
	}
	if dir == "" {
		d, err := defaultDataDir()
		if err != nil {
			return nil, err
		}
		dir = d
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("data directory %q: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("data directory %q: %w", dir, err)
	}
	e := &engine{lib: libPath, dir: dir, db: "default"}
	if err := e.start(); err != nil {
		return nil, err
	}
	global.eng = e
	return e, nil
}

func samePath(a, b string) bool {
	a, errA := filepath.Abs(a)
	b, errB := filepath.Abs(b)
	return errA == nil && errB == nil && filepath.Clean(a) == filepath.Clean(b)
}

// defaultDataDir creates the process's own data directory under the system
// temp directory (ProcessDataDir).
func defaultDataDir() (string, error) { return ProcessDataDir(os.TempDir()) }

// ProcessDataDir creates the process's own data directory under parent,
// parent/chlocal-<pid>, for Config.DataDir. The engine outlives every Server, so
// the directory cannot be removed while the process runs; each call removes
// the ones under parent left by processes that are gone.
func ProcessDataDir(parent string) (string, error) {
	old, _ := filepath.Glob(filepath.Join(parent, "chlocal-*"))
	for _, d := range old {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "chlocal-"))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
			_ = os.RemoveAll(d)
		}
	}
	dir := filepath.Join(parent, "chlocal-"+strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("data directory %q: %w", dir, err)
	}
	return dir, nil
}

func (e *engine) start() error {
	lib, err := purego.Dlopen(e.lib, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return fmt.Errorf("loading %q: %w", e.lib, err)
	}
	if err := e.api.load(lib); err != nil {
		return fmt.Errorf("loading %q: %w", e.lib, err)
	}
	// chDB installs crash handlers for SIGSEGV & co. and resets signals the
	// Go runtime owns; keep the Go runtime's handlers.
	e.sigs.save()
	e.api.signalHandlers(0)
	args := []string{"clickhouse", "--path=" + e.dir}
	argv := make([]*byte, len(args)+1)
	for i, a := range args {
		b := append([]byte(a), 0)
		argv[i] = &b[0]
	}
	conn := e.api.connect(int32(len(args)), &argv[0])
	runtime.KeepAlive(argv)
	e.sigs.restore()
	if conn == nil || *conn == nil {
		return fmt.Errorf("chdb_connect on %q failed", e.dir)
	}
	// chdb_connect returns a chdb_connection*; queries take the chdb_connection.
	e.conn = *conn
	v, err := e.execString("SELECT version(), timezone()", "TSV")
	if err != nil {
		return fmt.Errorf("chDB version: %w", err)
	}
	e.ver = parseVersion(v)
	return nil
}

// result is a query result owned by chDB until free is called.
type result struct {
	api          *chdbAPI
	ptr          unsafe.Pointer
	Data         []byte // points into chDB memory: valid until free
	RowsRead     uint64
	BytesRead    uint64
	RowsWritten  uint64
	BytesWritten uint64
	ElapsedNs    uint64
}

func (r *result) free() {
	if r.ptr != nil {
		r.api.destroyResult(r.ptr)
		r.ptr, r.Data = nil, nil
	}
}

// exec runs one statement in the session as it is, with output format
// format. The caller holds e.mu. Engine errors are *Exception.
func (e *engine) exec(query []byte, format string) (*result, error) {
	if len(query) == 0 {
		return nil, &Exception{Code: 62, Message: "DB::Exception: Empty query. (SYNTAX_ERROR)"}
	}
	f := []byte(format)
	if len(f) == 0 {
		f = []byte{0}
	}
	ptr := e.api.queryN(e.conn, &query[0], uintptr(len(query)), &f[0], uintptr(len(format)))
	runtime.KeepAlive(query)
	runtime.KeepAlive(f)
	e.sigs.restore()
	if ptr == nil {
		return &result{api: &e.api}, nil
	}
	if msg := cString(e.api.resultError(ptr)); msg != "" {
		e.api.destroyResult(ptr)
		return nil, parseException(msg)
	}
	r := &result{
		api:          &e.api,
		ptr:          ptr,
		RowsRead:     e.api.resultRowsRead(ptr),
		BytesRead:    e.api.resultBytesRead(ptr),
		RowsWritten:  e.api.resultRowsWritten(ptr),
		BytesWritten: e.api.resultBytesWrote(ptr),
		ElapsedNs:    uint64(e.api.resultElapsed(ptr) * 1e9),
	}
	if buf, n := e.api.resultBuffer(ptr), e.api.resultLength(ptr); buf != nil && n > 0 {
		r.Data = unsafe.Slice(buf, n)
	}
	return r, nil
}

// execString runs query and returns its output copied, for small queries.
// The caller holds e.mu.
func (e *engine) execString(query, format string) (string, error) {
	r, err := e.exec([]byte(query), format)
	if err != nil {
		return "", err
	}
	defer r.free()
	return string(r.Data), nil
}

func cString(p *byte) string {
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}

// signalGuard keeps the signal handlers the Go runtime installed across
// calls into chDB, which may replace or reset them.
type signalGuard struct {
	saved [65]sigaction
	ok    [65]bool
}

// sigaction is the kernel's struct sigaction on linux/amd64 and arm64:
// handler, flags, restorer, mask.
type sigaction [4]uint64

func rtSigaction(sig int, act, old *sigaction) syscall.Errno {
	_, _, errno := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig),
		uintptr(unsafe.Pointer(act)), uintptr(unsafe.Pointer(old)), 8, 0, 0)
	return errno
}

func (g *signalGuard) save() {
	for sig := 1; sig < len(g.saved); sig++ {
		if sig == int(syscall.SIGKILL) || sig == int(syscall.SIGSTOP) {
			continue
		}
		g.ok[sig] = rtSigaction(sig, nil, &g.saved[sig]) == 0
	}
}

// restore puts back every handler that changed since save.
func (g *signalGuard) restore() {
	for sig := 1; sig < len(g.saved); sig++ {
		if !g.ok[sig] {
			continue
		}
		var cur sigaction
		if rtSigaction(sig, nil, &cur) == 0 && cur != g.saved[sig] {
			rtSigaction(sig, &g.saved[sig], nil)
		}
	}
}

// run runs query in database db with the query's settings, serialized with
// every other query of the process. The settings are SET in the session for
// this query only: chDB has one session, shared by all connections.
func (e *engine) run(db string, settings []proto.Setting, query []byte, format string) (*result, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if mayChangeColumns(query) {
		clear(e.hdrs)
		e.hdrGen++
	}
	if err := e.useLocked(db); err != nil {
		return nil, err
	}
	set, reset, err := settingsSQL(settings)
	if err != nil {
		return nil, err
	}
	if set != "" {
		if _, err := e.execString(set, ""); err != nil {
			return nil, err
		}
		defer e.reset(reset)
	}
	return e.exec(query, format)
}

func (e *engine) version() serverVersion { return e.ver }

// header returns the header kept for key, or false and the generation to keep it with.
func (e *engine) header(key string) (block, uint64, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	h, ok := e.hdrs[key]
	return h, e.hdrGen, ok
}

// keepHeader keeps h for key, unless a statement that may change columns ran since gen.
func (e *engine) keepHeader(key string, h block, gen uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if gen != e.hdrGen {
		return
	}
	if e.hdrs == nil {
		e.hdrs = map[string]block{}
	}
	e.hdrs[key] = h
}

// mayChangeColumns reports whether query may change a table's columns or how DESCRIBE shows
// them: anything but a read, an INSERT or a USE.
func mayChangeColumns(query []byte) bool {
	switch parseStatement(string(query)).keyword() {
	case "SELECT", "WITH", "INSERT", "DESCRIBE", "DESC", "SHOW", "EXISTS", "EXPLAIN", "USE":
		return false
	}
	return true
}

// tempDir is the data directory: chDB reads files there.
func (e *engine) tempDir() string { return e.dir }

// reset puts settings back to their defaults, one by one if a setting
// cannot be reset so that the others are.
func (e *engine) reset(stmt string) {
	if _, err := e.execString(stmt, ""); err == nil {
		return
	}
	for _, one := range strings.Split(strings.TrimPrefix(stmt, "SET "), ", ") {
		_, _ = e.execString("SET "+one, "")
	}
}

// use makes db the session's current database.
func (e *engine) use(db string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.useLocked(db)
}

func (e *engine) useLocked(db string) error {
	if db == e.db {
		return nil
	}
	if _, err := e.execString("USE "+quoteIdent(db), ""); err != nil {
		return err
	}
	e.db = db
	return nil
}

// settingsSQL returns the SET statement applying settings and the one
// putting them back to their defaults; both "" without settings.
func settingsSQL(settings []proto.Setting) (set, reset string, err error) {
	var s, r strings.Builder
	for _, st := range settings {
		if st.Obsolete || st.Key == "readonly" {
			// readonly = 1 would forbid putting the settings back.
			continue
		}
		if !isSettingName(st.Key) {
			return "", "", &Exception{Code: int32(proto.ErrUnknownSetting),
				Message: fmt.Sprintf("DB::Exception: Setting %q is not a setting name. (UNKNOWN_SETTING)", st.Key)}
		}
		if s.Len() == 0 {
			s.WriteString("SET ")
			r.WriteString("SET ")
		} else {
			s.WriteString(", ")
			r.WriteString(", ")
		}
		s.WriteString(st.Key + " = " + quoteString(st.Value))
		r.WriteString(st.Key + " = DEFAULT")
	}
	return s.String(), r.String(), nil
}

func isSettingName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// quoteString returns s as a ClickHouse string literal.
func quoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// quoteIdent returns s as a ClickHouse quoted identifier.
func quoteIdent(s string) string {
	return "`" + strings.NewReplacer(`\`, `\\`, "`", "\\`").Replace(s) + "`"
}
