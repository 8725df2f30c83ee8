package pulsarlocal

import (
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
)

// newClient returns a pulsar-client-go client of b, closed in t.Cleanup.
func newClient(t testing.TB, b *Broker) pulsar.Client {
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
	return c
}

// receive receives one message or fails the test after a deadline.
func receive(t testing.TB, c pulsar.Consumer, timeout time.Duration) pulsar.Message {
	t.Helper()
	select {
	case m, ok := <-c.Chan():
		if !ok {
			t.Fatalf("consumer channel closed")
		}
		return m.Message
	case <-time.After(timeout):
		t.Fatalf("no message within %v", timeout)
	}
	return nil
}
