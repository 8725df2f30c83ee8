package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
)

// bareConfig is the bare consumer's configuration, passed to the child as JSON.
type bareConfig struct {
	URL          string
	Topic        string
	Subscription string
	Queue        int // ReceiverQueueSize per partition consumer
	Channel      int // MessageChannel size per partition consumer
	Connections  int // MaxConnectionsPerBroker
	AckInterval  time.Duration
	CPUProfile   string // write a CPU profile of the drain here; empty for none

	PipelinedProfile string `json:"-"` // pipelined's CPU profile (from /debug/pprof/) goes here
	ProfileSeconds   int    `json:"-"` // the first this many seconds of the drain
}

// bareResult is what the bare consumer reports when told to stop.
type bareResult struct {
	Received  int64
	Mallocs   uint64
	GCSeconds float64
}

// runBare is the child process: pulsar-client-go consumers, one per partition, configured as
// pipelined configures them, that only acknowledge (cumulatively, every AckInterval, as
// pipelined does). It prints "recv N" lines while it runs and "result {json}" after SIGTERM.
func runBare(cfgJSON string) error {
	var cfg bareConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		return fmt.Errorf("bare config %q: %w", cfgJSON, err)
	}
	client, err := pulsar.NewClient(pulsar.ClientOptions{
		URL:                     cfg.URL,
		ConnectionTimeout:       10 * time.Second,
		OperationTimeout:        30 * time.Second,
		MaxConnectionsPerBroker: cfg.Connections,
		Logger:                  plog.NewLoggerWithSlog(slog.New(slog.NewTextHandler(io.Discard, nil))),
	})
	if err != nil {
		return fmt.Errorf("client for %q: %w", cfg.URL, err)
	}
	defer client.Close()
	parts, err := client.TopicPartitions(cfg.Topic)
	if err != nil {
		return fmt.Errorf("partitions of %q: %w", cfg.Topic, err)
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile %q: %w", cfg.CPUProfile, err)
		}
		defer pprof.StopCPUProfile()
	}
	var received atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var consumers []pulsar.Consumer
	for _, topic := range parts {
		ch := make(chan pulsar.ConsumerMessage, cfg.Channel)
		c, err := client.Subscribe(pulsar.ConsumerOptions{
			Topic:                       topic,
			SubscriptionName:            cfg.Subscription,
			Type:                        pulsar.Failover,
			SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
			MessageChannel:              ch,
			ReceiverQueueSize:           cfg.Queue,
		})
		if err != nil {
			return fmt.Errorf("subscribe %q: %w", topic, err)
		}
		consumers = append(consumers, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			consume(c, ch, cfg.AckInterval, &received, stop)
		}()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	out := bufio.NewWriter(os.Stdout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Minute)
loop:
	for {
		select {
		case <-tick.C:
			fmt.Fprintf(out, "recv %d\n", received.Load())
			out.Flush()
		case <-sig:
			break loop
		case <-deadline:
			break loop
		}
	}
	close(stop)
	wg.Wait()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	res, _ := json.Marshal(bareResult{Received: received.Load(), Mallocs: ms.Mallocs, GCSeconds: s[0].Value.Float64()})
	fmt.Fprintf(out, "result %s\n", res)
	out.Flush()
	for _, c := range consumers {
		c.Close() // flushes the grouped acknowledgements
	}
	return nil
}

// consume takes every message of one partition and acknowledges cumulatively every interval.
// Like pipelined's worker, it takes what the channel holds (up to 1,024 messages) before it
// selects again, so the ceiling is the client's, not a select per message.
func consume(c pulsar.Consumer, ch <-chan pulsar.ConsumerMessage, every time.Duration, received *atomic.Int64, stop <-chan struct{}) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	var last pulsar.MessageID
	var n int64
	for {
		select {
		case cm := <-ch:
		drain:
			for taken := 1; ; taken++ {
				last = cm.Message.ID()
				n++
				if n&255 == 0 {
					received.Add(256)
				}
				if taken == 1024 {
					break
				}
				select {
				case cm = <-ch:
				default:
					break drain
				}
			}
		case <-tick.C:
			received.Add(n & 255)
			n &^= 255
			if last != nil {
				_ = c.AckIDCumulative(last)
				last = nil
			}
		case <-stop:
			received.Add(n & 255)
			if last != nil {
				_ = c.AckIDCumulative(last)
			}
			return
		}
	}
}
