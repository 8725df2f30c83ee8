// Package chlocal serves the ClickHouse native protocol over TCP from chDB,
// the ClickHouse engine as a library, so that ch-go talks to it as to a
// ClickHouse server. It is test and development infrastructure: one process
// runs one engine, shared by all its Servers, and queries run one at a time.
//
// The library (libchdb.so, ~560 MB) is not in git: `make chdb` fetches it
// once into a cache, see LibPath.
package chlocal

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Config configures a Server.
type Config struct {
	Addr    string       // listen address; default "127.0.0.1:0"
	DataDir string       // engine data directory; default: a directory owned by the process, see below
	LibPath string       // libchdb.so; default: LibPath() (unused once the process's engine runs)
	Logger  *slog.Logger // connection errors; default: none
}

// Server is a ClickHouse native-protocol endpoint in front of the process's
// chDB engine.
//
// The engine is started by the first New of the process, on that Server's
// DataDir, and lives until the process exits: chDB cannot be restarted in a
// process. Later Servers share it, so tests in one process should use
// distinct database names. A Server with an empty DataDir uses the
// engine's directory; when the first one had an empty DataDir too, that is
// $TMPDIR/chlocal-<pid>, removed by a later process once this one is gone.
type Server struct {
	cfg Config
	eng *engine
	ln  net.Listener
	log *slog.Logger

	procs processes

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	started bool
	closed  bool
	wg      sync.WaitGroup
}

// New starts the engine if needed and listens on cfg.Addr; Start serves.
func New(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	eng, err := openEngine(cfg.LibPath, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %q: %w", cfg.Addr, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Server{cfg: cfg, eng: eng, ln: ln, log: log, conns: map[net.Conn]struct{}{}}, nil
}

// NewTest starts a Server for a test and closes it at the test's end. It
// fails the test, saying how to get the library, when libchdb.so is missing.
func NewTest(t testing.TB) *Server {
	t.Helper()
	s, err := New(Config{})
	if err != nil {
		t.Fatalf("chlocal: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("chlocal: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Start serves connections in the background until Close.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("chlocal: server closed")
	}
	if s.started {
		return errors.New("chlocal: server already started")
	}
	s.started = true
	s.wg.Add(1)
	go s.accept()
	return nil
}

// Addr returns the address the Server listens on, "127.0.0.1:port".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// DataDir returns the engine's data directory.
func (s *Server) DataDir() string { return s.eng.dir }

// Close stops listening, closes the connections, releases held INSERTs
// and waits for the connections' handlers. The engine stays up for other
// Servers. Safe to call twice.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	err := s.ln.Close()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.procs.close() // a held INSERT runs, and its handler ends
	s.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close listener %s: %w", s.Addr(), err)
	}
	return nil
}

// Query runs sql in the engine, in database "default", and returns its
// output as TSV. For tests and demos.
func (s *Server) Query(sql string) (string, error) {
	r, err := s.eng.run("default", nil, []byte(sql), "TSV")
	if err != nil {
		return "", err
	}
	defer r.free()
	return string(r.Data), nil
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("chlocal: accept", "addr", s.Addr(), "err", err)
			}
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			err := serveConn(s.eng, &s.procs, nc)
			s.mu.Lock()
			delete(s.conns, nc)
			closed := s.closed
			s.mu.Unlock()
			_ = nc.Close()
			if err != nil && !closed {
				s.log.Warn("chlocal: connection closed", "remote", nc.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// serverVersion is the engine's version as the protocol reports it.
type serverVersion struct {
	major, minor, patch int
	timezone            string
}

func parseVersion(tsv string) serverVersion {
	var v serverVersion
	version, tz, _ := strings.Cut(strings.TrimSpace(tsv), "\t")
	v.timezone = tz
	parts := strings.Split(version, ".")
	for i, dst := range []*int{&v.major, &v.minor, &v.patch} {
		if i < len(parts) {
			*dst, _ = strconv.Atoi(parts[i])
		}
	}
	return v
}

// Main runs a package's tests and exits, for a TestMain of a package whose
// tests start the engine:
//
//	func TestMain(m *testing.M) { chlocal.Main(m) }
//
// Under the race detector a test binary's exit runs C exit handlers, and
// chDB's crash there while its threads still run; Main then exits without
// them. Otherwise it is os.Exit(m.Run()).
func Main(m *testing.M) {
	code := m.Run()
	global.mu.Lock()
	started := global.eng != nil
	global.mu.Unlock()
	if raceEnabled && started {
		syscall.Exit(code)
	}
	os.Exit(code)
}
