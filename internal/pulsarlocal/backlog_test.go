package pulsarlocal

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// TestAppendSaveLoad builds a backlog with AppendBatch, saves it, loads it
// into a new broker and consumes it with the real client.
func TestAppendSaveLoad(t *testing.T) {
	const partitions, batches, perBatch = 4, 25, 100
	src := NewTest(t, Config{})
	const topic = "backlog"
	if err := src.CreateTopic(topic, partitions); err != nil {
		t.Fatal(err)
	}
	msgs := make([]Message, perBatch)
	for p := 0; p < partitions; p++ {
		for i := 0; i < batches; i++ {
			for j := range msgs {
				seq := i*perBatch + j
				msgs[j] = Message{
					Key:         fmt.Sprintf("k%d", p),
					Payload:     []byte(strconv.Itoa(seq)),
					EventTimeMs: int64(1_700_000_000_000 + seq),
					Properties:  map[string]string{"p": strconv.Itoa(p)},
				}
			}
			if err := src.AppendBatch(topic, p, msgs); err != nil {
				t.Fatal(err)
			}
		}
	}
	var file bytes.Buffer
	if err := src.SaveTopic(topic, &file); err != nil {
		t.Fatal(err)
	}
	b := NewTest(t, Config{})
	if err := b.LoadTopic(bytes.NewReader(file.Bytes())); err != nil {
		t.Fatal(err)
	}
	const total = partitions * batches * perBatch
	for p := -1; p < partitions; p++ {
		want := int64(batches * perBatch)
		if p < 0 {
			want = total
		}
		if got, err := b.MessageCount(topic, p); err != nil || got != want {
			t.Errorf("MessageCount(%d) = %d, %v; want %d", p, got, err, want)
		}
	}

	client := newClient(t, b)
	cons, err := client.Subscribe(pulsar.ConsumerOptions{
		Topic: topic, SubscriptionName: "s",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	next := make([]int, partitions)
	for n := 0; n < total; n++ {
		m := receive(t, cons, 10*time.Second)
		p := int(m.ID().PartitionIdx())
		seq := seqOf(t, m)
		if seq != next[p] {
			t.Fatalf("partition %d: message %d, want %d", p, seq, next[p])
		}
		next[p]++
		if m.Key() != fmt.Sprintf("k%d", p) || m.Properties()["p"] != strconv.Itoa(p) ||
			m.EventTime().UnixMilli() != int64(1_700_000_000_000+seq) {
			t.Fatalf("partition %d message %d: key %q, properties %v, event time %v",
				p, seq, m.Key(), m.Properties(), m.EventTime())
		}
		cons.Ack(m)
	}
}

// TestLoadTopicErrors checks that broken backlog files are rejected.
func TestLoadTopicErrors(t *testing.T) {
	src := NewTest(t, Config{})
	if err := src.AppendBatch("x", -1, []Message{{Payload: []byte("a")}}); err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	if err := src.SaveTopic("x", &file); err != nil {
		t.Fatal(err)
	}
	good := file.Bytes()
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"bad-magic", append([]byte("XXTOPIC1"), good[8:]...)},
		{"truncated", good[:len(good)-6]},
		{"no-end", good[:len(good)-4]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewTest(t, Config{})
			if err := b.LoadTopic(bytes.NewReader(tc.data)); err == nil {
				t.Fatal("LoadTopic succeeded")
			}
		})
	}
}

// sensor is the Avro record of TestAvroSchema.
type sensor struct {
	Device string  `avro:"device"`
	Value  float64 `avro:"value"`
}

const sensorSchema = `{"type":"record","name":"Sensor","fields":[` +
	`{"name":"device","type":"string"},{"name":"value","type":"double"}]}`

// TestAvroSchema produces and consumes with an Avro schema, which goes
// through GET_OR_CREATE_SCHEMA and the schema in PRODUCER/SUBSCRIBE.
func TestAvroSchema(t *testing.T) {
	b := NewTest(t, Config{DefaultPartitions: 2})
	client := newClient(t, b)
	const topic = "persistent://public/default/avro"
	cons, err := client.Subscribe(pulsar.ConsumerOptions{
		Topic: topic, SubscriptionName: "s", Schema: pulsar.NewAvroSchema(sensorSchema, nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	prod, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic, Schema: pulsar.NewAvroSchema(sensorSchema, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if _, err := prod.Send(context.Background(), &pulsar.ProducerMessage{Value: &sensor{Device: "d1", Value: 1.5}}); err != nil {
		t.Fatal(err)
	}
	m := receive(t, cons, 10*time.Second)
	var got sensor
	if err := m.GetSchemaValue(&got); err != nil {
		t.Fatal(err)
	}
	if got != (sensor{Device: "d1", Value: 1.5}) {
		t.Errorf("received %+v", got)
	}
	s, _, err := b.getSchema(topic, nil)
	if err != nil || s.GetType().String() != "Avro" {
		t.Errorf("stored schema %v, %v; want Avro", s, err)
	}
	if n, _ := b.MessageCount(topic, -1); n != 1 {
		t.Errorf("MessageCount = %d, want 1", n)
	}
}
