package pipeline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeConfig(t testing.TB, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The documented config.yaml must say exactly what the code defaults to.
func TestConfigYAMLIsTheDefault(t *testing.T) {
	got, err := LoadConfig("../config.yaml")
	if err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	if want := DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Fatalf("config.yaml differs from DefaultConfig:\n got %+v\nwant %+v", got, want)
	}
}

func TestConfigProblems(t *testing.T) {
	schema := filepath.Join(t.TempDir(), "other.avsc")
	if err := os.WriteFile(schema, []byte(`{"type":"record","name":"X","fields":[{"name":"id","type":"int"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		yaml string
		want []string // each must appear in one problem line
	}{
		{"unknown key", "pulsar:\n  urll: x\n", []string{"'pulsar' has invalid keys: urll"}},
		{"wrong type", "pulsar:\n  receiver_queue_size: lots\n", []string{"pulsar.receiver_queue_size"}},
		{"bad duration", "window:\n  size: soon\n", []string{"window.size"}},
		{"impossible values", "window:\n  size: 10ms\n  time: wall\nclickhouse:\n  writers: 0\n  compression: gzip\n",
			[]string{"window.size: 10ms", `window.time: "wall" is not one of event, processing`, "clickhouse.writers: 0 must be positive", `clickhouse.compression: "gzip"`}},
		{"bad url", "pulsar:\n  url: http://x\n", []string{`pulsar.url: "http://x" is not a pulsar://`}},
		{"shared subscription", "pulsar:\n  subscription_type: shared\n", []string{`pulsar.subscription_type: "shared"`}},
		{"unreadable schema", "schema:\n  file: /nonexistent.avsc\n", []string{"schema.file: read schema"}},
		{"schema without fields", "schema:\n  file: " + schema + "\n", []string{"schema.file: ", "sensorId"}},
		{"bad identifier", "clickhouse:\n  table: \"a; DROP\"\n", []string{`clickhouse.table: "a; DROP" is not a plain identifier`}},
		{"half mtls", "pulsar:\n  tls_cert_file: /etc/hostname\n", []string{"pulsar.tls_cert_file: tls_cert_file and tls_key_file go together"}},
		{"missing secret file", "clickhouse:\n  password_file: /nonexistent\n", []string{"clickhouse.password_file: "}},
		{"duplicate status", "schema:\n  status_values: [1, 1]\n", []string{"schema.status_values: [1 1] lists a value twice"}},
		{"not yaml", "pulsar: [\n", []string{"config.yaml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(writeConfig(t, tc.yaml))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a *ConfigError", err)
			}
			for _, w := range tc.want {
				found := false
				for _, p := range ce.Problems {
					found = found || strings.Contains(p, w)
				}
				if !found {
					t.Fatalf("no problem mentions %q; got:\n%s", w, strings.Join(ce.Problems, "\n"))
				}
			}
		})
	}
}

// Every problem is reported at once, not just the first.
func TestConfigReportsEveryProblem(t *testing.T) {
	_, err := LoadConfig(writeConfig(t, "pulsar:\n  topic: \"\"\n  ack_interval: -1s\nlog:\n  level: loud\nhttp:\n  listen: nowhere\n"))
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a *ConfigError", err)
	}
	if len(ce.Problems) != 4 {
		t.Fatalf("got %d problems, want 4:\n%s", len(ce.Problems), strings.Join(ce.Problems, "\n"))
	}
}

// A key with nothing under it ("window:") keeps the defaults.
func TestConfigEmptySectionKeepsDefaults(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, "window:\nclickhouse:\n  database: x\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.ClickHouse.Database = "x"
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
}

func TestConfigEnvironmentOverrides(t *testing.T) {
	t.Setenv("PIPELINED_PULSAR_URL", "pulsar://10.0.0.1:6650")
	t.Setenv("PIPELINED_CLICKHOUSE_TABLE", "agg2")
	t.Setenv("PIPELINED_CLICKHOUSE_PASSWORD", "hunter2")
	t.Setenv("PIPELINED_HTTP_LISTEN", "0.0.0.0:9650")
	cfg, err := LoadConfig(writeConfig(t, "pulsar:\n  url: pulsar://file:6650\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Pulsar.URL != "pulsar://10.0.0.1:6650" || cfg.ClickHouse.Table != "agg2" || cfg.ClickHouse.Password != "hunter2" || cfg.HTTP.Listen != "0.0.0.0:9650" {
		t.Fatalf("environment not applied: %+v", cfg)
	}
}

// Secrets never reach printed output: not %v, %+v, %#v of the config, nor problem lines.
func TestConfigSecretsAreNotPrinted(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("s3cr3t-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PIPELINED_CLICKHOUSE_PASSWORD", "hunter2")
	cfg, err := LoadConfig(writeConfig(t, "pulsar:\n  token_file: "+tok+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Pulsar.Token != "s3cr3t-token" {
		t.Fatalf("token_file not read: got %q", string(cfg.Pulsar.Token))
	}
	for _, s := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)} {
		if strings.Contains(s, "s3cr3t") || strings.Contains(s, "hunter2") {
			t.Fatalf("secret printed: %s", s)
		}
	}
	_, err = LoadConfig(writeConfig(t, "pulsar:\n  token: s3cr3t\n  tls_cert_file: /etc/hostname\n  tls_key_file: /etc/hostname\n"))
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("want a problem that does not print the token, got %v", err)
	}
}

// FuzzLoadConfig: any bytes as a config file give a config or a *ConfigError, never a panic.
func FuzzLoadConfig(f *testing.F) {
	seed, err := os.ReadFile("../config.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte("window:\n  size: 1s\n"))
	f.Add([]byte("pulsar: {url: 7}\n"))
	f.Add([]byte("schema:\n  measures: temperature\n"))
	p := filepath.Join(f.TempDir(), "config.yaml")
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadConfig(p)
		var ce *ConfigError
		if err != nil && !errors.As(err, &ce) {
			t.Fatalf("error of type %T: %v", err, err)
		}
	})
}
