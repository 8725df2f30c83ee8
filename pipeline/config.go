// Package pipeline wires pipelined's stages: Pulsar consumers, the Avro decoder, the per-partition
// window streams of package agg, the ClickHouse writer and the acknowledgements.
package pipeline

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"
)

// Secret is a configuration value that is never printed: not in logs, `check` output or metrics.
type Secret string

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "<redacted>"
}

// GoString hides the value from %#v too.
func (s Secret) GoString() string { return s.String() }

// Config is pipelined's whole configuration. config.yaml at the repository root documents every
// key; the comment on each field states its default.
type Config struct {
	Pulsar     PulsarConfig     `koanf:"pulsar"`
	Schema     SchemaConfig     `koanf:"schema"`
	Window     WindowConfig     `koanf:"window"`
	ClickHouse ClickHouseConfig `koanf:"clickhouse"`
	Limits     LimitsConfig     `koanf:"limits"`
	HTTP       HTTPConfig       `koanf:"http"`
	Log        LogConfig        `koanf:"log"`
	// ShutdownTimeout bounds a graceful stop: finish writing, acknowledge, exit. Default 30s.
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`
}

// PulsarConfig is the source.
type PulsarConfig struct {
	// URL of the Pulsar service. Default "pulsar://127.0.0.1:6650"; "pulsar+ssl://" for TLS.
	URL string `koanf:"url"`
	// Topic is the partitioned topic to consume. Default "persistent://public/default/iot-sensor-data".
	Topic string `koanf:"topic"`
	// Subscription name. Default "pipelined".
	Subscription string `koanf:"subscription"`
	// SubscriptionType is "failover" (default: several hosts share the partitions) or
	// "exclusive". Shared types are refused: they break per-partition order.
	SubscriptionType string `koanf:"subscription_type"`
	// InitialPosition of a new subscription: "earliest" (default) or "latest".
	InitialPosition string `koanf:"initial_position"`
	// ReceiverQueueSize is the client's queue per partition consumer. Default 500 (64
	// partitions x 500 is 32 ms at 1M msg/s; more only costs memory: bench/RESULTS.md).
	ReceiverQueueSize int `koanf:"receiver_queue_size"`
	// MessageChannelSize is the channel between a partition consumer and its worker. Default 500.
	MessageChannelSize int `koanf:"message_channel_size"`
	// ConnectionsPerBroker is the client's MaxConnectionsPerBroker. Default 8: the client
	// parses every message on its connection's reader goroutine, so with all partitions on one
	// broker (the reference topology) a single connection caps the rate (bench/RESULTS.md).
	ConnectionsPerBroker int `koanf:"connections_per_broker"`
	// OperationTimeout for lookups, subscribe and acks. Default 30s.
	OperationTimeout time.Duration `koanf:"operation_timeout"`
	// ConnectionTimeout for establishing a TCP connection. Default 10s.
	ConnectionTimeout time.Duration `koanf:"connection_timeout"`
	// Token for token authentication. Default none. Prefer TokenFile or PIPELINED_PULSAR_TOKEN.
	Token Secret `koanf:"token"`
	// TokenFile is read for the token at start-up. Default none.
	TokenFile string `koanf:"token_file"`
	// TLSTrustCertsFile is the CA bundle for pulsar+ssl://. Default: system roots.
	TLSTrustCertsFile string `koanf:"tls_trust_certs_file"`
	// TLSCertFile and TLSKeyFile enable mTLS authentication. Default none.
	TLSCertFile string `koanf:"tls_cert_file"`
	TLSKeyFile  string `koanf:"tls_key_file"`
	// TLSAllowInsecure accepts any server certificate. Default false.
	TLSAllowInsecure bool `koanf:"tls_allow_insecure"`
	// DeadLetterTopic receives messages that cannot be aggregated (undecodable, or stamped
	// beyond window.max_future), with the original bytes and the reason as a property. Default
	// "<topic>-dlq"; "-" disables it (bad messages are counted and acknowledged).
	DeadLetterTopic string `koanf:"dead_letter_topic"`
	// AckInterval is how often each partition acknowledges what is durable. Default 100ms.
	AckInterval time.Duration `koanf:"ack_interval"`
}

// SchemaConfig says how to decode messages.
type SchemaConfig struct {
	// File is an Avro schema (.avsc). Default "": the built-in reference SensorData schema.
	File string `koanf:"file"`
	// FromRegistry takes the schema from the topic's schema in Pulsar instead. Default false.
	FromRegistry bool `koanf:"from_registry"`
	// KeyField is the device id field (int or long). Default "sensorId".
	KeyField string `koanf:"key_field"`
	// TimeField is the event time field, epoch milliseconds. Default "timestamp".
	TimeField string `koanf:"time_field"`
	// StatusField is counted per value. Default "status".
	StatusField string `koanf:"status_field"`
	// Measures are aggregated (min, max, sum). Default [temperature, humidity, pressure, batteryLevel].
	Measures []string `koanf:"measures"`
	// StatusValues are the status values counted one by one. Default [1, 2, 3, 4].
	StatusValues []int32 `koanf:"status_values"`
	// MaxMessageBytes: a larger payload is a bad message. Default 65536.
	MaxMessageBytes int `koanf:"max_message_bytes"`
}

// WindowConfig says how readings are cut into windows.
type WindowConfig struct {
	// Size of the tumbling window. Default 1m.
	Size time.Duration `koanf:"size"`
	// Time is "event" (default: the message's time field) or "processing" (arrival time, as
	// the reference did; not reproducible on replay).
	Time string `koanf:"time"`
	// WatermarkDelay: the watermark trails the highest event time seen by this much. Default 5s.
	WatermarkDelay time.Duration `koanf:"watermark_delay"`
	// AllowedLateness keeps a window open after the watermark passes its end. Default 0s.
	AllowedLateness time.Duration `koanf:"allowed_lateness"`
	// LatePolicy for readings whose window has closed: "table" (default: written to
	// clickhouse.late_table) or "drop" (counted only).
	LatePolicy string `koanf:"late_policy"`
	// IdleFlush: a partition that received nothing for this long writes its open windows as
	// partial rows and acknowledges them. Default 30s; 0 disables.
	IdleFlush time.Duration `koanf:"idle_flush"`
	// MaxFuture: with event time, a reading stamped more than this ahead of the host's clock
	// (a device clock gone wrong, microseconds sent as milliseconds) goes to the dead-letter
	// topic with reason "future_time" instead of pushing the watermark ahead and making every
	// later reading late. Default 1h; 0 disables.
	MaxFuture time.Duration `koanf:"max_future"`
}

// ClickHouseConfig is the sink.
type ClickHouseConfig struct {
	// Addr is host:port of the native protocol. Default "127.0.0.1:9000".
	Addr string `koanf:"addr"`
	// Database. Default "default".
	Database string `koanf:"database"`
	// Table receives one row per device, window and flush. Default "sensor_agg".
	Table string `koanf:"table"`
	// View returns one final row per device and window. Default "<table>_final".
	View string `koanf:"view"`
	// LateTable receives late readings when window.late_policy is "table". Default "sensor_late".
	LateTable string `koanf:"late_table"`
	// User. Default "default".
	User string `koanf:"user"`
	// Password. Default empty. Prefer PasswordFile or PIPELINED_CLICKHOUSE_PASSWORD.
	Password Secret `koanf:"password"`
	// PasswordFile is read for the password at start-up. Default none.
	PasswordFile string `koanf:"password_file"`
	// TLS enables TLS to ClickHouse. Default false.
	TLS bool `koanf:"tls"`
	// TLSCAFile is the CA bundle for TLS. Default: system roots.
	TLSCAFile string `koanf:"tls_ca_file"`
	// TLSInsecureSkipVerify accepts any server certificate. Default false.
	TLSInsecureSkipVerify bool `koanf:"tls_insecure_skip_verify"`
	// CreateTables creates the table, view and late table if missing. Default true.
	CreateTables bool `koanf:"create_tables"`
	// TTL of rows, by window start; 0 keeps them forever. Default 720h (30 days).
	TTL time.Duration `koanf:"ttl"`
	// Compression of blocks: "lz4" (default), "zstd" or "none".
	Compression string `koanf:"compression"`
	// DialTimeout for a connection. Default 5s.
	DialTimeout time.Duration `koanf:"dial_timeout"`
	// RetryMaxBackoff caps the backoff between retries of a failed write. Default 30s.
	RetryMaxBackoff time.Duration `koanf:"retry_max_backoff"`
	// Writers is the number of connections writing in parallel. Default 2.
	Writers int `koanf:"writers"`
	// InsertLinger: a writer holding a block waits this long for more (other partitions close
	// the same window moments apart) so that they go in one INSERT, which makes one part on the
	// server instead of one per partition. It adds at most this to close-to-visible. Default
	// 200ms; 0 writes what is waiting at once.
	InsertLinger time.Duration `koanf:"insert_linger"`
	// Lookback is how far back (by window start, from the newest window it wrote) a restarted
	// partition looks for rows it already wrote. Default 24h.
	Lookback time.Duration `koanf:"lookback"`
}

// LimitsConfig bounds memory.
type LimitsConfig struct {
	// MaxKeysPerWindow: a window reaching this many devices is written early as partial rows.
	// Default 1000000.
	MaxKeysPerWindow int `koanf:"max_keys_per_window"`
	// MaxPendingRows: rows handed to the writer but not yet in ClickHouse. Reaching it stops
	// intake until ClickHouse catches up. Default 2000000.
	MaxPendingRows int `koanf:"max_pending_rows"`
	// MemoryLimitMB is the Go runtime's soft memory limit (GOMEMLIMIT). Default 0: unset.
	MemoryLimitMB int `koanf:"memory_limit_mb"`
}

// HTTPConfig is the metrics and health listener.
type HTTPConfig struct {
	// Listen address for /metrics, /healthz, /readyz. Default "127.0.0.1:9650"; "" disables.
	Listen string `koanf:"listen"`
}

// LogConfig is the logger.
type LogConfig struct {
	// Level: "debug", "info" (default), "warn" or "error".
	Level string `koanf:"level"`
	// Format: "auto" (default: text on a terminal, JSON otherwise), "text" or "json".
	Format string `koanf:"format"`
}

// DefaultConfig returns the configuration used for every key a file does not set.
func DefaultConfig() Config {
	return Config{
		Pulsar: PulsarConfig{
			URL:                  "pulsar://127.0.0.1:6650",
			Topic:                "persistent://public/default/iot-sensor-data",
			Subscription:         "pipelined",
			SubscriptionType:     "failover",
			InitialPosition:      "earliest",
			ReceiverQueueSize:    500,
			MessageChannelSize:   500,
			ConnectionsPerBroker: 8,
			OperationTimeout:     30 * time.Second,
			ConnectionTimeout:    10 * time.Second,
			AckInterval:          100 * time.Millisecond,
		},
		Schema: SchemaConfig{
			KeyField:        "sensorId",
			TimeField:       "timestamp",
			StatusField:     "status",
			Measures:        []string{"temperature", "humidity", "pressure", "batteryLevel"},
			StatusValues:    []int32{1, 2, 3, 4},
			MaxMessageBytes: 65536,
		},
		Window: WindowConfig{
			Size:           time.Minute,
			Time:           "event",
			WatermarkDelay: 5 * time.Second,
			LatePolicy:     "table",
			IdleFlush:      30 * time.Second,
			MaxFuture:      time.Hour,
		},
		ClickHouse: ClickHouseConfig{
			Addr:            "127.0.0.1:9000",
			Database:        "default",
			Table:           "sensor_agg",
			LateTable:       "sensor_late",
			User:            "default",
			CreateTables:    true,
			TTL:             30 * 24 * time.Hour,
			Compression:     "lz4",
			DialTimeout:     5 * time.Second,
			RetryMaxBackoff: 30 * time.Second,
			Writers:         2,
			InsertLinger:    200 * time.Millisecond,
			Lookback:        24 * time.Hour,
		},
		Limits: LimitsConfig{
			MaxKeysPerWindow: 1000000,
			MaxPendingRows:   2000000,
		},
		HTTP:            HTTPConfig{Listen: "127.0.0.1:9650"},
		Log:             LogConfig{Level: "info", Format: "auto"},
		ShutdownTimeout: 30 * time.Second,
	}
}

// EnvVars maps the environment variables that override configuration keys. Every other key is
// set in the file.
var EnvVars = map[string]string{
	"PIPELINED_PULSAR_URL":          "pulsar.url",
	"PIPELINED_PULSAR_TOPIC":        "pulsar.topic",
	"PIPELINED_PULSAR_SUBSCRIPTION": "pulsar.subscription",
	"PIPELINED_PULSAR_TOKEN":        "pulsar.token",
	"PIPELINED_CLICKHOUSE_ADDR":     "clickhouse.addr",
	"PIPELINED_CLICKHOUSE_DATABASE": "clickhouse.database",
	"PIPELINED_CLICKHOUSE_TABLE":    "clickhouse.table",
	"PIPELINED_CLICKHOUSE_USER":     "clickhouse.user",
	"PIPELINED_CLICKHOUSE_PASSWORD": "clickhouse.password",
	"PIPELINED_HTTP_LISTEN":         "http.listen",
	"PIPELINED_LOG_LEVEL":           "log.level",
	"PIPELINED_LOG_FORMAT":          "log.format",
}

// ConfigError lists every problem found in a configuration, one per key.
type ConfigError struct {
	Problems []string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("%d configuration problem(s):\n  %s", len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// LoadConfig reads path (YAML; "" for defaults only), applies the environment overrides in
// EnvVars, resolves secret files and validates the result. A *ConfigError lists every problem.
func LoadConfig(path string) (Config, error) {
	k := koanf.New(".")
	if err := k.Load(structs.Provider(DefaultConfig(), "koanf"), nil); err != nil {
		return Config{}, fmt.Errorf("defaults: %w", err)
	}
	if path != "" {
		b, err := file.Provider(path).ReadBytes()
		if err != nil {
			return Config{}, &ConfigError{Problems: []string{fmt.Sprintf("%s: %v", path, err)}}
		}
		m, err := yaml.Parser().Unmarshal(b)
		if err != nil {
			return Config{}, &ConfigError{Problems: []string{fmt.Sprintf("%s: %v", path, err)}}
		}
		// An empty key ("window:" with nothing under it) means "the defaults", not "nothing".
		if err := k.Load(mapProvider(pruneNil(m)), nil); err != nil {
			return Config{}, &ConfigError{Problems: []string{fmt.Sprintf("%s: %v", path, err)}}
		}
	}
	if err := k.Load(env.Provider("PIPELINED_", ".", func(s string) string { return EnvVars[s] }), nil); err != nil {
		return Config{}, fmt.Errorf("environment: %w", err)
	}
	var cfg Config
	var problems []string
	err := k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{DecoderConfig: &mapstructure.DecoderConfig{
		DecodeHook:       mapstructure.StringToTimeDurationHookFunc(),
		WeaklyTypedInput: true,
		ErrorUnused:      true,
		Result:           &cfg,
		TagName:          "koanf",
	}})
	problems = append(problems, flatten(err)...)
	problems = append(problems, cfg.resolveSecrets()...)
	problems = append(problems, cfg.validate()...)
	slices.Sort(problems)
	if len(problems) > 0 {
		return cfg, &ConfigError{Problems: slices.Compact(problems)}
	}
	return cfg, nil
}

// mapProvider hands koanf an already parsed map.
type mapProvider map[string]any

func (m mapProvider) ReadBytes() ([]byte, error)    { return nil, errors.New("mapProvider: not bytes") }
func (m mapProvider) Read() (map[string]any, error) { return m, nil }

// pruneNil removes null values, recursively, so they leave the defaults in place.
func pruneNil(m map[string]any) map[string]any {
	for k, v := range m {
		switch v := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			m[k] = pruneNil(v)
		}
	}
	return m
}

// flatten lists the leaves of a tree of joined errors, one line each.
func flatten(err error) []string {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	if inner := errors.Unwrap(err); inner != nil {
		if _, ok := inner.(interface{ Unwrap() []error }); ok {
			return flatten(inner) // mapstructure's "decoding failed ..." wrapper
		}
	}
	return []string{strings.ReplaceAll(err.Error(), "\n", " ")}
}

func (c *Config) resolveSecrets() []string {
	var p []string
	if c.Pulsar.TokenFile != "" {
		b, err := os.ReadFile(c.Pulsar.TokenFile)
		if err != nil {
			p = append(p, fmt.Sprintf("pulsar.token_file: %v", err))
		} else {
			c.Pulsar.Token = Secret(strings.TrimSpace(string(b)))
		}
	}
	if c.ClickHouse.PasswordFile != "" {
		b, err := os.ReadFile(c.ClickHouse.PasswordFile)
		if err != nil {
			p = append(p, fmt.Sprintf("clickhouse.password_file: %v", err))
		} else {
			c.ClickHouse.Password = Secret(strings.TrimSpace(string(b)))
		}
	}
	return p
}

// validate returns every problem, each naming its key and the accepted values.
func (c *Config) validate() []string {
	var p []string
	bad := func(key string, format string, args ...any) {
		p = append(p, key+": "+fmt.Sprintf(format, args...))
	}
	oneOf := func(key, v string, allowed ...string) {
		if !slices.Contains(allowed, v) {
			bad(key, "%q is not one of %s", v, strings.Join(allowed, ", "))
		}
	}
	positive := func(key string, v int) {
		if v <= 0 {
			bad(key, "%d must be positive", v)
		}
	}
	positiveDur := func(key string, d time.Duration) {
		if d <= 0 {
			bad(key, "%s must be positive", d)
		}
	}
	hostPort := func(key, v string) {
		if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
			bad(key, "%q is not host:port", v)
		}
	}

	if u, err := url.Parse(c.Pulsar.URL); err != nil || (u.Scheme != "pulsar" && u.Scheme != "pulsar+ssl") || u.Host == "" {
		bad("pulsar.url", "%q is not a pulsar:// or pulsar+ssl:// URL", c.Pulsar.URL)
	}
	if c.Pulsar.Topic == "" {
		bad("pulsar.topic", "must be set")
	}
	if c.Pulsar.Subscription == "" {
		bad("pulsar.subscription", "must be set")
	}
	oneOf("pulsar.subscription_type", c.Pulsar.SubscriptionType, "failover", "exclusive")
	oneOf("pulsar.initial_position", c.Pulsar.InitialPosition, "earliest", "latest")
	positive("pulsar.receiver_queue_size", c.Pulsar.ReceiverQueueSize)
	positive("pulsar.message_channel_size", c.Pulsar.MessageChannelSize)
	positive("pulsar.connections_per_broker", c.Pulsar.ConnectionsPerBroker)
	positiveDur("pulsar.operation_timeout", c.Pulsar.OperationTimeout)
	positiveDur("pulsar.connection_timeout", c.Pulsar.ConnectionTimeout)
	positiveDur("pulsar.ack_interval", c.Pulsar.AckInterval)
	if (c.Pulsar.TLSCertFile == "") != (c.Pulsar.TLSKeyFile == "") {
		bad("pulsar.tls_cert_file", "tls_cert_file and tls_key_file go together")
	}
	for key, f := range map[string]string{"pulsar.tls_trust_certs_file": c.Pulsar.TLSTrustCertsFile,
		"pulsar.tls_cert_file": c.Pulsar.TLSCertFile, "pulsar.tls_key_file": c.Pulsar.TLSKeyFile,
		"clickhouse.tls_ca_file": c.ClickHouse.TLSCAFile} {
		if f != "" {
			if _, err := os.Stat(f); err != nil {
				bad(key, "%v", err)
			}
		}
	}
	if c.Pulsar.Token != "" && c.Pulsar.TLSCertFile != "" {
		bad("pulsar.token", "token and mTLS (tls_cert_file) authentication are exclusive")
	}

	if c.Schema.File != "" && c.Schema.FromRegistry {
		bad("schema.file", "file and from_registry are exclusive")
	}
	if c.Schema.KeyField == "" {
		bad("schema.key_field", "must be set")
	}
	if c.Schema.TimeField == "" {
		bad("schema.time_field", "must be set")
	}
	if len(c.Schema.Measures) == 0 || len(c.Schema.Measures) > 8 {
		bad("schema.measures", "%d measures: want 1 to 8", len(c.Schema.Measures))
	}
	if len(c.Schema.StatusValues) > 16 {
		bad("schema.status_values", "%d values: at most 16", len(c.Schema.StatusValues))
	}
	if s := slices.Clone(c.Schema.StatusValues); len(slices.Compact(slices.Sorted(slices.Values(s)))) != len(s) {
		bad("schema.status_values", "%v lists a value twice", c.Schema.StatusValues)
	}
	positive("schema.max_message_bytes", c.Schema.MaxMessageBytes)
	if !c.Schema.FromRegistry {
		if _, err := c.Decoder(""); err != nil {
			key := "schema"
			if c.Schema.File != "" {
				key = "schema.file"
			}
			bad(key, "%v", err)
		}
	}

	if c.Window.Size < time.Second || c.Window.Size%time.Millisecond != 0 {
		bad("window.size", "%s: want at least 1s, whole milliseconds", c.Window.Size)
	}
	oneOf("window.time", c.Window.Time, "event", "processing")
	if c.Window.WatermarkDelay < 0 {
		bad("window.watermark_delay", "%s must not be negative", c.Window.WatermarkDelay)
	}
	if c.Window.AllowedLateness < 0 {
		bad("window.allowed_lateness", "%s must not be negative", c.Window.AllowedLateness)
	}
	oneOf("window.late_policy", c.Window.LatePolicy, "table", "drop")
	if c.Window.IdleFlush < 0 {
		bad("window.idle_flush", "%s must not be negative", c.Window.IdleFlush)
	}
	if c.Window.MaxFuture < 0 {
		bad("window.max_future", "%s must not be negative", c.Window.MaxFuture)
	}

	hostPort("clickhouse.addr", c.ClickHouse.Addr)
	ident := func(key, v string) {
		if v == "" || strings.ContainsAny(v, "`\"' .;\\\n") {
			bad(key, "%q is not a plain identifier", v)
		}
	}
	ident("clickhouse.database", c.ClickHouse.Database)
	ident("clickhouse.table", c.ClickHouse.Table)
	if c.ClickHouse.View != "" {
		ident("clickhouse.view", c.ClickHouse.View)
	}
	ident("clickhouse.late_table", c.ClickHouse.LateTable)
	oneOf("clickhouse.compression", c.ClickHouse.Compression, "lz4", "zstd", "none")
	positiveDur("clickhouse.dial_timeout", c.ClickHouse.DialTimeout)
	positiveDur("clickhouse.retry_max_backoff", c.ClickHouse.RetryMaxBackoff)
	positiveDur("clickhouse.lookback", c.ClickHouse.Lookback)
	positive("clickhouse.writers", c.ClickHouse.Writers)
	if c.ClickHouse.TTL < 0 {
		bad("clickhouse.ttl", "%s must not be negative", c.ClickHouse.TTL)
	}
	if c.ClickHouse.InsertLinger < 0 {
		bad("clickhouse.insert_linger", "%s must not be negative", c.ClickHouse.InsertLinger)
	}

	positive("limits.max_keys_per_window", c.Limits.MaxKeysPerWindow)
	positive("limits.max_pending_rows", c.Limits.MaxPendingRows)
	if c.Limits.MemoryLimitMB < 0 {
		bad("limits.memory_limit_mb", "%d must not be negative", c.Limits.MemoryLimitMB)
	}
	if c.HTTP.Listen != "" {
		hostPort("http.listen", c.HTTP.Listen)
	}
	oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf("log.format", c.Log.Format, "auto", "text", "json")
	positiveDur("shutdown_timeout", c.ShutdownTimeout)
	return p
}

// ViewName returns the final view's name.
func (c *ClickHouseConfig) ViewName() string {
	if c.View != "" {
		return c.View
	}
	return c.Table + "_final"
}

// DeadLetter returns the dead-letter topic, "" when disabled.
func (c *PulsarConfig) DeadLetter() string {
	switch c.DeadLetterTopic {
	case "-":
		return ""
	case "":
		return c.Topic + "-dlq"
	}
	return c.DeadLetterTopic
}
