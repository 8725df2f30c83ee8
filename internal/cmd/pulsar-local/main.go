// Command pulsar-local serves an in-memory Pulsar broker (internal/pulsarlocal)
// for development and benchmarks, in the foreground until SIGINT or SIGTERM.
//
//	PULSAR_LISTEN      listen address, default 127.0.0.1:6650
//	PULSAR_PARTITIONS  partitions of topics created on first use, default 64
//	-load FILE         backlog file (pulsarlocal.SaveTopic format) to load first; repeatable
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pipelined/pipelined/internal/pulsarlocal"
)

type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(v string) error { *f = append(*f, v); return nil }

func main() {
	listen := envOr("PULSAR_LISTEN", "127.0.0.1:6650")
	partitions, err := strconv.Atoi(envOr("PULSAR_PARTITIONS", "64"))
	if err != nil {
		log.Fatalf("PULSAR_PARTITIONS %q: %v", os.Getenv("PULSAR_PARTITIONS"), err)
	}
	var loads files
	flag.StringVar(&listen, "listen", listen, "listen address (env PULSAR_LISTEN)")
	flag.IntVar(&partitions, "partitions", partitions, "partitions of topics created on first use (env PULSAR_PARTITIONS)")
	flag.Var(&loads, "load", "backlog file to load before serving; repeatable")
	flag.Parse()

	b, err := pulsarlocal.New(pulsarlocal.Config{Addr: listen, DefaultPartitions: partitions, Logf: log.Printf})
	if err != nil {
		log.Fatal(err)
	}
	for _, name := range loads {
		if err := load(b, name); err != nil {
			b.Close()
			log.Fatal(err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Printf("pulsar-local serving %s (default partitions %d)", b.URL(), partitions)
	if err := b.Run(ctx); err != nil {
		log.Fatal(err)
	}
	log.Print("pulsar-local stopped")
}

func load(b *pulsarlocal.Broker, name string) error {
	start := time.Now()
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	defer f.Close()
	if err := b.LoadTopic(f); err != nil {
		return fmt.Errorf("load %q: %w", name, err)
	}
	log.Printf("loaded %s in %v", name, time.Since(start).Round(time.Millisecond))
	return nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
