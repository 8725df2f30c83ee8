package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pipelined/pipelined/internal/promtext"
	"github.com/pipelined/pipelined/internal/pulsarlocal"
)

// drainResult is one drain of the backlog by one client.
type drainResult struct {
	Record   string // "41 B" or "300 B"
	Client   string // "bare" or "pipelined"
	Round    int
	Messages int64
	Bytes    int64         // Avro payload bytes
	Drain    time.Duration // first subscribe -> last acknowledgement
	Receive  time.Duration // first subscribe -> every message received
	CPU      float64       // child's user+system CPU seconds over the drain
	RSS      int64         // child's peak RSS (VmHWM), bytes
	GCShare  float64       // GC CPU / process CPU
	Allocs   float64       // heap allocations per message (process total / messages)
	P99      float64       // pipelined: window close -> rows visible p99, seconds; NaN for bare
	Late     float64       // pipelined: late messages
	Harness  float64       // this process's CPU seconds over the drain: the broker, and ClickHouse for pipelined
}

func (r drainResult) rate() float64   { return float64(r.Messages) / r.Drain.Seconds() }
func (r drainResult) perCPU() float64 { return float64(r.Messages) / r.CPU }

// perMachineCPU is messages per CPU-second of the client and the harness together.
func (r drainResult) perMachineCPU() float64 { return float64(r.Messages) / (r.CPU + r.Harness) }

// drainSpec says how to run one drain.
type drainSpec struct {
	broker     *pulsarlocal.Broker
	topic      string
	partitions int
	messages   int64
	bytes      int64
	record     string
	round      int
	sub        string
	timeout    time.Duration
	ackGrace   time.Duration // waitAcked's, after the client exits
}

// procStat returns a process's user+system CPU seconds from /proc/<pid>/stat.
func procStat(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no ')' in %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	// Fields after the name: state is f[0]; utime and stime are fields 14 and 15 of the file.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100, nil // USER_HZ is 100 on Linux
}

// waitSubscribed returns when partition 0 has the subscription (the first subscribe).
func (d *drainSpec) waitSubscribed(ctx context.Context, c *child) (time.Time, error) {
	t := d.topic + "-partition-0"
	for {
		if _, err := d.broker.Subscription(t, -1, d.sub); err == nil {
			return time.Now(), nil
		}
		select {
		case <-c.done:
			return time.Time{}, fmt.Errorf("client exited before subscribing: %v", c.err)
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("no subscription %q: %w", d.sub, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// waitAcked returns when every partition's backlog is zero, after the client, sent SIGTERM,
// acknowledges what it has and exits. Acknowledgements only move forward, so it checks one
// partition at a time (a backlog count scans the unacknowledged entries, which is costly for
// a full partition). Once the client has exited, the broker gets ackGrace to read the
// acknowledgements it sent last; a backlog left after that is lost acknowledgements, an error
// that names the partition, rather than a wait for the drain's timeout.
func (d *drainSpec) waitAcked(ctx context.Context, c *child) (time.Time, error) {
	done := c.done
	var grace <-chan time.Time
	for p := 0; p < d.partitions; {
		st, err := d.broker.Subscription(fmt.Sprintf("%s-partition-%d", d.topic, p), -1, d.sub)
		if err == nil && st.Backlog == 0 {
			p++
			continue
		}
		state := func() string { // the subscription's, or why there is none; for an error only
			if err != nil {
				return err.Error()
			}
			return fmt.Sprintf("%+v", st)
		}
		select {
		case <-done:
			done, grace = nil, time.After(d.ackGrace)
		case <-grace:
			return time.Time{}, fmt.Errorf("client exited (%v) and partition %d is not acknowledged %v later (%s): acknowledgements lost",
				c.err, p, d.ackGrace, state())
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("partition %d not acknowledged (%s): %w", p, state(), ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return time.Now(), nil
}

// ackGrace is how long waitAcked waits for the broker to read a client's last
// acknowledgements after the client has exited. They were written to the connection before
// the client closed it, so the broker has them within milliseconds.
const ackGrace = 5 * time.Second

// child is a running client process.
type child struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited; err is then cmd.Wait's
	err  error
	hwm  atomic.Int64 // VmHWM, sampled until the process exits
}

func (c *child) peakRSS() int64 { return c.hwm.Load() }

// sampleHWM keeps the child's VmHWM until /proc no longer has it.
func (c *child) sampleHWM() {
	for {
		v, err := procHWM(c.cmd.Process.Pid)
		if err != nil || v == 0 {
			return
		}
		c.hwm.Store(v)
		time.Sleep(20 * time.Millisecond)
	}
}

func startChild(cmd *exec.Cmd) (*child, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go c.sampleHWM()
	go func() { c.err = cmd.Wait(); close(c.done) }()
	return c, nil
}

// stop sends SIGTERM and waits up to a minute, then kills.
func (c *child) stop() error {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return c.err
	case <-time.After(time.Minute):
		_ = c.cmd.Process.Kill()
		return fmt.Errorf("pid %d: no exit a minute after SIGTERM; killed", c.cmd.Process.Pid)
	}
}

// runBareDrain drains the backlog with the bare client in a child process (this program with
// -bare).
func runBareDrain(ctx context.Context, d *drainSpec, bc bareConfig, env []string) (drainResult, error) {
	res := drainResult{Record: d.record, Client: "bare", Round: d.round, Messages: d.messages, Bytes: d.bytes, P99: math.NaN()}
	self, err := os.Executable()
	if err != nil {
		return res, err
	}
	cj, _ := json.Marshal(bc)
	cmd := exec.CommandContext(ctx, self, "-bare", string(cj))
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	c, err := startChild(cmd)
	if err != nil {
		return res, err
	}
	defer func() { _ = c.cmd.Process.Kill() }()
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	t0, err := d.waitSubscribed(ctx, c)
	if err != nil {
		return res, err
	}
	cpu0, _ := procStat(c.cmd.Process.Pid)
	// Every message received (the child's progress lines), then every one acknowledged.
	for recv := int64(0); recv < d.messages; {
		select {
		case l, ok := <-lines:
			if !ok {
				return res, errors.New("bare client closed its output")
			}
			if n, ok := strings.CutPrefix(l, "recv "); ok {
				recv, _ = strconv.ParseInt(n, 10, 64)
			}
		case <-ctx.Done():
			return res, fmt.Errorf("bare client: %d of %d messages received: %w", recv, d.messages, ctx.Err())
		}
	}
	res.Receive = time.Since(t0)
	// SIGTERM: the child acknowledges what it took and exits.
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	t1, err := d.waitAcked(ctx, c)
	if err != nil {
		return res, err
	}
	res.Drain = t1.Sub(t0)
	var br bareResult
	for l := range lines {
		if j, ok := strings.CutPrefix(l, "result "); ok {
			if err := json.Unmarshal([]byte(j), &br); err != nil {
				return res, fmt.Errorf("bare result %q: %w", j, err)
			}
		}
	}
	if err := c.stop(); err != nil {
		return res, fmt.Errorf("bare client: %w", err)
	}
	cpu := usage(c.cmd)
	res.CPU, res.RSS = cpu-cpu0, c.peakRSS()
	res.Allocs = float64(br.Mallocs) / float64(d.messages)
	res.GCShare = br.GCSeconds / cpu
	return res, nil
}

// usage returns an exited child's total CPU seconds from its rusage. (Its maxrss is not used:
// after a vfork-style exec it starts from the parent's RSS, which holds the backlog.)
func usage(cmd *exec.Cmd) float64 {
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// procHWM returns a process's peak RSS in bytes from /proc/<pid>/status (VmHWM).
func procHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmHWM", pid)
}

// pipelinedConfig is the generated configuration for one drain.
func pipelinedConfig(d *drainSpec, url, chAddr, db, listen, schemaFile string, bc bareConfig) string {
	return fmt.Sprintf(`pulsar:
  url: %s
  topic: %s
  subscription: %s
  receiver_queue_size: %d
  message_channel_size: %d
  connections_per_broker: %d
  ack_interval: %s
  dead_letter_topic: "-"
schema:
  file: %q
clickhouse:
  addr: %s
  database: %s
  ttl: 0s
http:
  listen: %s
log:
  level: warn
  format: text
shutdown_timeout: 60s
`, url, d.topic, d.sub, bc.Queue, bc.Channel, bc.Connections, bc.AckInterval, schemaFile, chAddr, db, listen)
}

// runPipelinedDrain drains the backlog with pipelined (the real binary) into ClickHouse.
func runPipelinedDrain(ctx context.Context, d *drainSpec, bin, chAddr, schemaFile string, bc bareConfig, env []string) (drainResult, error) {
	res := drainResult{Record: d.record, Client: "pipelined", Round: d.round, Messages: d.messages, Bytes: d.bytes}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	listen := ln.Addr().String()
	ln.Close()
	dir, err := os.MkdirTemp("", "pipelined-bench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	cfgPath := filepath.Join(dir, "config.yaml")
	cfg := pipelinedConfig(d, bc.URL, chAddr, "bench_"+d.sub, listen, schemaFile, bc)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return res, err
	}
	cmd := exec.CommandContext(ctx, bin, "run", "-c", cfgPath)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.Env = append(os.Environ(), env...)
	c, err := startChild(cmd)
	if err != nil {
		return res, fmt.Errorf("start %s: %w", bin, err)
	}
	defer func() { _ = c.cmd.Process.Kill() }()
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	t0, err := d.waitSubscribed(ctx, c)
	if err != nil {
		return res, err
	}
	cpu0, _ := procStat(c.cmd.Process.Pid)
	mURL := "http://" + listen + "/metrics"
	profDone := make(chan error, 1)
	if bc.PipelinedProfile != "" {
		go func() { profDone <- fetchProfile("http://"+listen, bc.PipelinedProfile, bc.ProfileSeconds) }()
	} else {
		profDone <- nil
	}
	for {
		m, err := promtext.Scrape(mURL)
		if err == nil && m.Sum("pipelined_messages_received_total") >= float64(d.messages) {
			break
		}
		select {
		case <-c.done:
			return res, fmt.Errorf("pipelined exited: %v", c.err)
		case <-ctx.Done():
			return res, fmt.Errorf("pipelined: not every message received: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	res.Receive = time.Since(t0)
	// Every message is in pipelined: read its metrics, then stop it. A graceful stop writes
	// the open windows to ClickHouse and acknowledges them; the drain ends at the last ack.
	m, err := promtext.Scrape(mURL)
	if err != nil {
		return res, fmt.Errorf("scrape %s: %w", mURL, err)
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	t1, err := d.waitAcked(ctx, c)
	if err != nil {
		return res, err
	}
	res.Drain = t1.Sub(t0)
	if err := <-profDone; err != nil {
		return res, fmt.Errorf("pipelined CPU profile: %w", err)
	}
	if err := c.stop(); err != nil {
		return res, fmt.Errorf("pipelined stop: %w", err)
	}
	cpu := usage(c.cmd)
	res.CPU, res.RSS = cpu-cpu0, c.peakRSS()
	res.Allocs = m.Sum("go_memstats_mallocs_total") / float64(d.messages)
	res.GCShare = m.Sum("go_gc_cpu_seconds_total") / m.Sum("process_cpu_seconds_total")
	res.P99 = m.Quantile("pipelined_close_to_visible_seconds", 0.99)
	res.Late = m.Sum("pipelined_late_messages_total")
	return res, nil
}

// fetchProfile writes a CPU profile of seconds seconds from pipelined's /debug/pprof/ to file.
func fetchProfile(base, file string, seconds int) error {
	resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, seconds))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /debug/pprof/profile: %s", resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
