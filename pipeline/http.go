package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"
)

// HTTP serves /metrics (Prometheus text), /healthz (the process is up), /readyz (every
// partition is consuming and ClickHouse answers) and Go's profiles under /debug/pprof/ (as
// VictoriaMetrics does; the listener is loopback unless configured otherwise).
type HTTP struct {
	srv  *http.Server
	ln   net.Listener
	log  *slog.Logger
	once sync.Once
}

// NewHTTP listens on addr for m.
func NewHTTP(addr string, m *Metrics, log *slog.Logger) (*HTTP, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http.listen %q: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		m.WritePrometheus(w)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		switch {
		case !m.ready.Load():
			http.Error(w, "not consuming", http.StatusServiceUnavailable)
		case m.chDown.Load():
			http.Error(w, "clickhouse unreachable", http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "ready")
		}
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return &HTTP{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln, log: log}, nil
}

// Addr returns the address it listens on.
func (h *HTTP) Addr() string { return h.ln.Addr().String() }

// Start serves in the background.
func (h *HTTP) Start() {
	go func() {
		if err := h.srv.Serve(h.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.log.Error("http server", "err", err.Error())
		}
	}()
}

// Close stops serving. Safe to call twice.
func (h *HTTP) Close() error {
	var err error
	h.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err = h.srv.Shutdown(ctx)
	})
	return err
}
