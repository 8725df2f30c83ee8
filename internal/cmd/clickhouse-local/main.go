// Command clickhouse-local serves a local ClickHouse over the native
// protocol (chDB behind internal/chlocal) in the foreground until SIGINT or
// SIGTERM, for development and demos.
//
//	CLICKHOUSE_LISTEN   listen address; default 127.0.0.1:9000
//	CLICKHOUSE_DATA     data directory; default $HOME/.cache/pipelined/clickhouse-data
//	CHDB_LIB_PATH       libchdb.so; default the cache `make chdb` fills
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pipelined/pipelined/internal/chlocal"
)

func main() {
	if err := run(); err != nil {
		slog.Error("clickhouse-local", "err", err)
		os.Exit(1)
	}
}

func run() error {
	addr := os.Getenv("CLICKHOUSE_LISTEN")
	if addr == "" {
		addr = "127.0.0.1:9000"
	}
	dir := os.Getenv("CLICKHOUSE_DATA")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return fmt.Errorf("set CLICKHOUSE_DATA: %w", err)
		}
		dir = filepath.Join(home, ".cache", "pipelined", "clickhouse-data")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	start := time.Now()
	s, err := chlocal.New(chlocal.Config{Addr: addr, DataDir: dir, Logger: slog.Default()})
	if err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		return err
	}
	slog.Info("clickhouse-local: serving the ClickHouse native protocol",
		"addr", s.Addr(), "data", s.DataDir(), "startup", time.Since(start).Round(time.Millisecond))
	<-ctx.Done()
	stop()
	start = time.Now()
	err = s.Close()
	slog.Info("clickhouse-local: stopped", "took", time.Since(start).Round(time.Millisecond))
	return err
}
