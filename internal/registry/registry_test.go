package registry

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/hamba/avro/v2"

	"github.com/pipelined/pipelined/internal/pulsarlocal"
	pb "github.com/pipelined/pipelined/internal/pulsarpb"
	"github.com/pipelined/pipelined/internal/schemas"
)

// produceWithSchema registers schema for topic on b the way the load generator does: by
// creating a producer that brings it; a nil schema registers none.
func produceWithSchema(t *testing.T, b *pulsarlocal.Broker, topic string, schema pulsar.Schema) {
	t.Helper()
	c, err := pulsar.NewClient(pulsar.ClientOptions{
		URL:               b.URL(),
		Logger:            plog.DefaultNopLogger(),
		OperationTimeout:  10 * time.Second,
		ConnectionTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatalf("client of %s: %v", b.URL(), err)
	}
	t.Cleanup(c.Close)
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, Schema: schema})
	if err != nil {
		t.Fatalf("producer on %q: %v", topic, err)
	}
	t.Cleanup(p.Close)
}

func fingerprint(t *testing.T, def string) [32]byte {
	t.Helper()
	s, err := avro.Parse(def)
	if err != nil {
		t.Fatalf("parse %q: %v", def, err)
	}
	return s.Fingerprint()
}

func TestSchemaFromPulsarlocal(t *testing.T) {
	b := pulsarlocal.NewTest(t, pulsarlocal.Config{DefaultPartitions: 3})
	avroSchema := pulsar.NewAvroSchema(schemas.SensorData, nil)
	want := avroSchema.GetSchemaInfo().Schema
	produceWithSchema(t, b, "sensors", avroSchema)

	for _, topic := range []string{
		"sensors",
		"public/default/sensors",
		"persistent://public/default/sensors",
		"persistent://public/default/sensors-partition-0",
		"persistent://public/default/sensors-partition-2",
	} {
		t.Run(topic, func(t *testing.T) {
			def, typ, err := Schema(t.Context(), Options{URL: b.URL(), Timeout: 10 * time.Second}, topic)
			if err != nil {
				t.Fatalf("Schema: %v", err)
			}
			if typ != "AVRO" {
				t.Fatalf("type %q, want AVRO", typ)
			}
			if def != want {
				t.Fatalf("definition\n%s\nwant\n%s", def, want)
			}
			if fingerprint(t, def) != fingerprint(t, schemas.SensorData) {
				t.Fatalf("definition %s is not SensorData", def)
			}
		})
	}
}

func TestSchemaLatestVersion(t *testing.T) {
	b := pulsarlocal.NewTest(t, pulsarlocal.Config{})
	produceWithSchema(t, b, "evolving", pulsar.NewAvroSchema(schemas.SensorData, nil))
	second := pulsar.NewAvroSchema(schemas.SensorDataPadded, nil)
	produceWithSchema(t, b, "evolving", second)

	def, _, err := Schema(t.Context(), Options{URL: b.URL()}, "evolving")
	if err != nil {
		t.Fatalf("Schema: %v", err)
	}
	if def != second.GetSchemaInfo().Schema {
		t.Fatalf("definition %s, want the latest %s", def, second.GetSchemaInfo().Schema)
	}
}

func TestSchemaOfTopicWithoutSchema(t *testing.T) {
	b := pulsarlocal.NewTest(t, pulsarlocal.Config{})
	produceWithSchema(t, b, "raw-bytes", nil)

	for _, topic := range []string{"raw-bytes", "never-created"} {
		_, _, err := Schema(t.Context(), Options{URL: b.URL()}, topic)
		if !errors.Is(err, ErrNoSchema) {
			t.Fatalf("%q: error %v, want ErrNoSchema", topic, err)
		}
		if !strings.Contains(err.Error(), "persistent://public/default/"+topic) || !strings.Contains(err.Error(), b.URL()) {
			t.Fatalf("%q: error %q names neither the topic nor the URL", topic, err)
		}
	}
}

// silentListener accepts connections on 127.0.0.1 and never writes a byte.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	return "pulsar://" + ln.Addr().String()
}

func TestSchemaSilentBrokerTimesOut(t *testing.T) {
	url := silentListener(t)
	const timeout = 300 * time.Millisecond
	start := time.Now()
	_, _, err := Schema(t.Context(), Options{URL: url, Timeout: timeout}, "sensors")
	elapsed := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want a deadline", err)
	}
	if !strings.Contains(err.Error(), url) || !strings.Contains(err.Error(), "CONNECTED") {
		t.Fatalf("error %q does not say what %s did not answer", err, url)
	}
	if elapsed < timeout || elapsed > timeout+5*time.Second {
		t.Fatalf("returned after %v, want about %v", elapsed, timeout)
	}
}

func TestSchemaCancelled(t *testing.T) {
	url := silentListener(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, _, err := Schema(ctx, Options{URL: url, Timeout: time.Hour}, "sensors")
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want cancelled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Schema did not return within 10s of its context's cancellation")
	}
}

func TestSchemaConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	url := "pulsar://" + ln.Addr().String()
	ln.Close()
	_, _, err = Schema(t.Context(), Options{URL: url, Timeout: 5 * time.Second}, "sensors")
	if err == nil || !strings.Contains(err.Error(), "dial "+url) {
		t.Fatalf("error %v, want a dial error naming %s", err, url)
	}
}

func TestSchemaBadArguments(t *testing.T) {
	for _, tc := range []struct {
		url, topic, want string
	}{
		{"http://127.0.0.1:8080", "t", `scheme "http"`},
		{"127.0.0.1:6650", "t", "want pulsar:// or pulsar+ssl://"},
		{"pulsar://", "t", `bad host ""`},
		{"pulsar://127.0.0.1:6650/x", "t", "bad host"},
		{"pulsar://127.0.0.1:6650", "", `topic ""`},
		{"pulsar://127.0.0.1:6650", "a/b", `topic "a/b"`},
		{"pulsar://127.0.0.1:6650", "http://a/b/c", `topic "http://a/b/c"`},
		{"pulsar://127.0.0.1:6650", "persistent://a/b", `topic "persistent://a/b"`},
	} {
		_, _, err := Schema(t.Context(), Options{URL: tc.url, Timeout: time.Second}, tc.topic)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q: error %v, want one containing %q", tc.url, tc.topic, err, tc.want)
		}
	}
}

func TestParseServiceURL(t *testing.T) {
	for _, tc := range []struct {
		url   string
		hosts []string
		tls   bool
	}{
		{"pulsar://localhost", []string{"localhost:6650"}, false},
		{"pulsar://localhost:6652/", []string{"localhost:6652"}, false},
		{"pulsar+ssl://a,b:7000", []string{"a:6651", "b:7000"}, true},
		{"pulsar://[::1]:6650", []string{"[::1]:6650"}, false},
		{"pulsar://::1", []string{"[::1]:6650"}, false},
	} {
		hosts, useTLS, err := parseServiceURL(tc.url)
		if err != nil || strings.Join(hosts, " ") != strings.Join(tc.hosts, " ") || useTLS != tc.tls {
			t.Errorf("%s: %v %v %v, want %v %v", tc.url, hosts, useTLS, err, tc.hosts, tc.tls)
		}
	}
}

func TestTypeName(t *testing.T) {
	for typ, want := range map[pb.Schema_Type]string{
		pb.Schema_Avro:           "AVRO",
		pb.Schema_Json:           "JSON",
		pb.Schema_KeyValue:       "KEY_VALUE",
		pb.Schema_Bool:           "BOOLEAN",
		pb.Schema_LocalDateTime:  "LOCAL_DATE_TIME",
		pb.Schema_ProtobufNative: "PROTOBUF_NATIVE",
	} {
		if got := typeName(typ); got != want {
			t.Errorf("%v: %q, want %q", typ, got, want)
		}
	}
}
