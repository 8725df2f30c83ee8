package tests

// Helpers for the fault tests (faults_test.go): pipelined as its own process, its /metrics,
// the broker's backlog, producers that run alongside, raw messages and ClickHouse reads.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/hamba/avro/v2"

	"github.com/pipelined/pipelined/internal/loadgen"
	"github.com/pipelined/pipelined/internal/promtext"
	"github.com/pipelined/pipelined/internal/schemas"
	"github.com/pipelined/pipelined/pipeline"
)

// partitions is the topic's partition count in every fault test, as in production.
const partitions = 64

// ---- the pipelined binary

var pipelinedBin struct {
	once sync.Once
	path string
	err  error
}

// pipelinedBinary builds pipelined from the repository root once per test process, into
// $TMPDIR/pipelined-e2e-<pid>; directories of test processes that are gone are removed.
// $PIPELINED_BIN names a binary to use instead.
func pipelinedBinary(t *testing.T) string {
	t.Helper()
	pipelinedBin.once.Do(func() {
		if bin := os.Getenv("PIPELINED_BIN"); bin != "" { // a binary built elsewhere
			pipelinedBin.path = bin
			return
		}
		sweepBinaryDirs()
		root, err := filepath.Abs("..")
		if err != nil {
			pipelinedBin.err = err
			return
		}
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("pipelined-e2e-%d", os.Getpid()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			pipelinedBin.err = err
			return
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			if gr := os.Getenv("GOROOT"); gr != "" {
				goTool, err = filepath.Join(gr, "bin", "go"), nil
			}
		}
		if err != nil {
			pipelinedBin.err = fmt.Errorf("no go tool to build pipelined: %w", err)
			return
		}
		path := filepath.Join(dir, "pipelined")
		cmd := exec.Command(goTool, "build", "-o", path, ".")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			pipelinedBin.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		pipelinedBin.path = path
	})
	if pipelinedBin.err != nil {
		t.Fatal(pipelinedBin.err)
	}
	return pipelinedBin.path
}

func sweepBinaryDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "pipelined-e2e-*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "pipelined-e2e-"))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(d)
		}
	}
}

// ---- configuration

// startFaultServices is the start of every fault test: the pipelined binary built, the local
// services up with the reference's partitions, and the fault tests' configuration for them.
func startFaultServices(t *testing.T) (*services, pipeline.Config) {
	t.Helper()
	pipelinedBinary(t)
	s := startServices(t, partitions)
	return s, s.faultConfig()
}

// faultConfig is pipelined's configuration for the fault tests: the harness's (generous
// watermark delay) plus an idle flush, so that a partition that has received everything writes
// its last windows and acknowledges them, and the broker's backlog reaching zero means done.
func (s *services) faultConfig() pipeline.Config {
	cfg := s.config()
	cfg.Window.IdleFlush = 2 * time.Second
	// The fault tests produce event time up to maxCompression (100x) faster than the wall
	// clock: a producer goroutine starved for a second on this 2-core machine is 100 s of
	// event-time disorder, which a production watermark delay rightly calls late. Tolerate 5
	// minutes.
	cfg.Window.WatermarkDelay = 5 * time.Minute
	cfg.ClickHouse.RetryMaxBackoff = time.Second
	cfg.Log.Level = "info"
	cfg.Log.Format = "text"
	return cfg
}

// writeConfig writes cfg as a configuration file pipelined reads (JSON is YAML).
func writeConfig(t *testing.T, cfg pipeline.Config, path string) {
	t.Helper()
	b, err := json.MarshalIndent(koanfMap(reflect.ValueOf(cfg)), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// koanfMap turns a configuration struct into the nested map of its koanf keys.
func koanfMap(v reflect.Value) map[string]any {
	out := map[string]any{}
	for i := range v.NumField() {
		f := v.Type().Field(i)
		key := f.Tag.Get("koanf")
		if key == "" || !f.IsExported() {
			continue
		}
		fv := v.Field(i)
		switch {
		case f.Type == reflect.TypeFor[time.Duration]():
			out[key] = time.Duration(fv.Int()).String()
		case f.Type.Kind() == reflect.Struct:
			out[key] = koanfMap(fv)
		case f.Type.Kind() == reflect.String:
			out[key] = fv.String() // pipeline.Secret too
		default:
			out[key] = fv.Interface()
		}
	}
	return out
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// ---- pipelined as a process

// proc is one run of the pipelined binary.
type proc struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	log     *syncBuffer
	addr    string // /metrics
	started time.Time
	done    chan struct{}
	state   *os.ProcessState
}

var procSeq atomic.Int64

// startProc runs `pipelined run -c <cfg>` with its own metrics address. Its output is kept and
// shown (the end of it, and every warning and error) if the test fails.
func startProc(t *testing.T, cfg pipeline.Config, name string) *proc {
	t.Helper()
	bin := pipelinedBinary(t)
	cfg.HTTP.Listen = freeAddr(t)
	name = fmt.Sprintf("%s#%d", name, procSeq.Add(1))
	path := filepath.Join(t.TempDir(), "config.yaml")
	writeConfig(t, cfg, path)
	p := &proc{t: t, name: name, log: &syncBuffer{}, addr: cfg.HTTP.Listen, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "run", "-c", path)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start pipelined: %v", err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.state = p.cmd.ProcessState
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("---- %s (pid %d, %s) output: its warnings and errors, then its last lines ----\n%s",
				p.name, p.cmd.Process.Pid, p.state, p.log.excerpt(40, 60))
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// failIfExited fails the test if pipelined stopped by itself.
func (p *proc) failIfExited() {
	p.t.Helper()
	if p.exited() {
		p.t.Fatalf("%s exited by itself: %s", p.name, p.state)
	}
}

// kill9 kills the process with SIGKILL and waits for it.
func (p *proc) kill9() {
	p.t.Helper()
	p.failIfExited()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatalf("kill -9 %s: %v", p.name, err)
	}
	<-p.done
}

// term sends SIGTERM and waits for the exit (at most timeout), failing the test unless
// pipelined exits 0.
func (p *proc) term(timeout time.Duration) time.Duration {
	p.t.Helper()
	p.failIfExited()
	t0 := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("%s did not exit within %s of SIGTERM", p.name, timeout)
	}
	if code := p.state.ExitCode(); code != 0 {
		p.t.Fatalf("%s exited with %s after SIGTERM, want 0", p.name, p.state)
	}
	return time.Since(t0)
}

// metrics scrapes /metrics.
func (p *proc) metrics() (promMetrics, error) {
	m, err := promtext.Scrape("http://" + p.addr + "/metrics")
	return promMetrics(m), err
}

// mustMetrics scrapes /metrics, waiting for the listener for a few seconds.
func (p *proc) mustMetrics() promMetrics {
	p.t.Helper()
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		p.failIfExited()
		var m promMetrics
		if m, err = p.metrics(); err == nil {
			return m
		}
	}
	p.t.Fatalf("%s: metrics: %v", p.name, err)
	return nil
}

// waitUntil polls the process's metrics until done holds, failing the test after timeout
// (what names the awaited state) or if the process exits meanwhile.
func (p *proc) waitUntil(what string, timeout time.Duration, done func(promMetrics) bool) {
	p.t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		p.failIfExited()
		if done(p.mustMetrics()) {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: %s not within %s", p.name, what, timeout)
		}
	}
}

// waitReady waits until /readyz answers 200: every partition is consuming.
func (p *proc) waitReady(timeout time.Duration) {
	p.t.Helper()
	c := http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		p.failIfExited()
		resp, err := c.Get("http://" + p.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	p.t.Fatalf("%s not ready within %s", p.name, timeout)
}

// promMetrics are the samples of one scrape by series ("name{labels}").
type promMetrics promtext.Metrics

// sum adds every series of metric name.
func (m promMetrics) sum(name string) float64 { return promtext.Metrics(m).Sum(name) }

// byLabel returns metric name's series by the value of label.
func (m promMetrics) byLabel(name, label string) map[string]float64 {
	out := map[string]float64{}
	prefix := name + "{" + label + `="`
	for k, v := range m {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			if j := strings.IndexByte(rest, '"'); j >= 0 {
				out[rest[:j]] = v
			}
		}
	}
	return out
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// excerpt returns up to maxWarn warning and error lines, then the last tail lines.
func (b *syncBuffer) excerpt(maxWarn, tail int) string {
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	var out []string
	for _, l := range lines {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") || strings.Contains(l, "panic") {
			if len(out) == maxWarn {
				out = append(out, "...")
				break
			}
			out = append(out, l)
		}
	}
	var last []string // the client's routine connection lines left out
	for i := len(lines) - 1; i >= 0 && len(last) < tail; i-- {
		if !(strings.Contains(lines[i], "level=INFO") && strings.Contains(lines[i], "component=pulsar-client")) {
			last = append(last, lines[i])
		}
	}
	slices.Reverse(last)
	out = append(out, "---- last lines (without the Pulsar client's INFO lines) ----")
	out = append(out, last...)
	return strings.Join(out, "\n")
}

// ---- the broker

// backlog returns the messages not yet acknowledged on the pipelined subscription over all
// partitions; ok is false while a partition has no subscription yet.
func (s *services) backlog(t *testing.T, sub string) (n int64, ok bool) {
	t.Helper()
	for i := range partitions {
		st, err := s.broker.Subscription(topic, i, sub)
		if err != nil {
			return 0, false
		}
		n += st.Backlog
	}
	return n, true
}

// waitDrained waits until nothing is left to produce and the subscription's backlog is zero:
// every message was received, written (the idle flush writes the last windows) and
// acknowledged. The running processes must stay up meanwhile.
func (s *services) waitDrained(t *testing.T, cfg pipeline.Config, timeout time.Duration, producing func() bool, procs ...*proc) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var n int64
	for time.Now().Before(deadline) {
		for _, p := range procs {
			p.failIfExited()
		}
		var ok bool
		if n, ok = s.backlog(t, cfg.Pulsar.Subscription); ok && n == 0 && (producing == nil || !producing()) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("backlog still %d messages after %s", n, timeout)
}

// load is what a production sends: n messages of a stream of total, starting at message from,
// over devices devices, with event times spread evenly over minutes minutes from base (epoch
// ms), at rate messages per second (0: as fast as event time may run, see maxCompression).
type load struct {
	n, from, total int64
	devices        int
	base           int64
	minutes        int
	rate           int
}

// maxCompression bounds how much faster than the wall clock a production's event time runs.
const maxCompression = 100

// production is a loadgen run in the background.
type production struct {
	n    int64
	done chan struct{}
	st   loadgen.Stats
	err  error
}

// startProducing sends n messages at rate per second (0: as fast as possible) over devices
// devices, event times spread evenly over minutes minutes from base (epoch ms), recording each
// acknowledged message in e.
func (s *services) startProducing(t *testing.T, e *expectation, n int64, devices int, base int64, minutes int, rate int) *production {
	t.Helper()
	return s.startLoad(t, e, load{n: n, devices: devices, base: base, minutes: minutes, rate: rate})
}

// startLoad sends l with the reference producer in the background, recording each message the
// broker acknowledged in e.
func (s *services) startLoad(t *testing.T, e *expectation, l load) *production {
	t.Helper()
	if l.total == 0 {
		l.total = l.n
	}
	// Event time runs at most maxCompression times the wall clock: a producer goroutine that
	// this 2-core machine starves for a second then puts its messages at most that many
	// seconds of event time behind the others' in a partition, well within the watermark delay.
	// Unpaced, a short run's 20 minutes would pass in a fraction of a second.
	if limit := int(maxCompression * l.total / int64(l.minutes*60)); l.rate == 0 || l.rate > limit {
		l.rate = max(limit, 1)
	}
	i := atomic.Int64{}
	i.Store(l.from)
	span := int64(l.minutes) * 60000
	p, err := loadgen.NewProducer(loadgen.ProducerConfig{
		URL: s.broker.URL(), Topic: topic, Count: l.n, Devices: l.devices, Seed: uint64(l.base + l.from), Rate: l.rate,
		Clock:  func() int64 { return l.base + i.Add(1)*span/l.total },
		OnSend: e.onSend,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	pr := &production{n: l.n, done: make(chan struct{})}
	go func() {
		defer close(pr.done)
		defer p.Close()
		pr.st, pr.err = p.Run(t.Context())
	}()
	t.Cleanup(func() { <-pr.done })
	return pr
}

func (pr *production) running() bool {
	select {
	case <-pr.done:
		return false
	default:
		return true
	}
}

// wait waits for the production to end and checks that everything was sent and recorded.
func (pr *production) wait(t *testing.T, e *expectation, n int64) {
	t.Helper()
	pr.finish(t)
	if got := e.n.Load(); got != n {
		t.Fatalf("recorded %d messages, want %d", got, n)
	}
}

// finish waits for the production to end and checks that all its messages were sent.
func (pr *production) finish(t *testing.T) {
	t.Helper()
	<-pr.done
	if pr.err != nil {
		t.Fatalf("produce: %v", pr.err)
	}
	if pr.st.Messages != pr.n {
		t.Fatalf("produced %d, want %d", pr.st.Messages, pr.n)
	}
}

// rawProducer sends arbitrary payloads with keys, as any client could.
type rawProducer struct {
	client pulsar.Client
	prod   pulsar.Producer
}

func newRawProducer(t *testing.T, url, topic string) *rawProducer {
	t.Helper()
	c, err := pulsar.NewClient(pulsar.ClientOptions{URL: url, Logger: plog.DefaultNopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, BatchingMaxPublishDelay: time.Millisecond})
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	r := &rawProducer{client: c, prod: p}
	t.Cleanup(r.close)
	return r
}

// send sends every message and returns their IDs in order, once all are acknowledged.
func (r *rawProducer) send(t *testing.T, msgs []*pulsar.ProducerMessage) []pulsar.MessageID {
	t.Helper()
	ids := make([]pulsar.MessageID, len(msgs))
	errs := make([]error, len(msgs))
	var wg sync.WaitGroup
	for i, m := range msgs {
		wg.Add(1)
		r.prod.SendAsync(t.Context(), m, func(id pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			ids[i], errs[i] = id, err
			wg.Done()
		})
	}
	if err := r.prod.FlushWithCtx(t.Context()); err != nil {
		t.Fatalf("flush: %v", err)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("raw send: %v", err)
	}
	return ids
}

func (r *rawProducer) close() {
	r.prod.Close()
	r.client.Close()
}

var sensorSchema = avro.MustParse(schemas.SensorData)

// encodeSample encodes s as a SensorData record.
func encodeSample(t *testing.T, s loadgen.Sample) []byte {
	t.Helper()
	b, err := avro.Marshal(sensorSchema, s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// randomSample is a reading with the reference's ranges for device dev at time ms.
func randomSample(r *rand.Rand, dev int32, ms int64) loadgen.Sample {
	return loadgen.Sample{
		SensorID: dev, SensorType: 1 + r.Int32N(8),
		Temperature: 10 + r.Float64()*30, Humidity: 20 + r.Float64()*60,
		Pressure: 980 + r.Float64()*50, BatteryLevel: 20 + r.Float64()*80,
		Status: 1 + r.Int32N(4), Timestamp: ms,
	}
}

// ---- ClickHouse

// chQuery runs a SELECT over TCP with the given result columns.
func (s *services) chQuery(t *testing.T, body string, res proto.Results, onBlock func()) {
	t.Helper()
	c, err := ch.Dial(t.Context(), ch.Options{Address: s.ch.Addr(), Database: s.db, ReadTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Do(t.Context(), ch.Query{Body: body, Result: res, OnResult: func(context.Context, proto.Block) error {
		onBlock()
		return nil
	}})
	if err != nil {
		t.Fatalf("%s: %v", body, err)
	}
}

// count runs a query returning one UInt64.
func (s *services) count(t *testing.T, body string) uint64 {
	t.Helper()
	var c proto.ColUInt64
	var n uint64
	s.chQuery(t, body, proto.Results{{Name: "n", Data: &c}}, func() {
		for i := range c.Rows() {
			n += c.Row(i)
		}
	})
	return n
}

// tableName is the table's name qualified with the test's database.
func (s *services) tableName(table string) string { return "`" + s.db + "`.`" + table + "`" }
