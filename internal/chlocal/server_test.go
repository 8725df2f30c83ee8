package chlocal

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
)

func dial(t testing.TB, s *Server, opt ch.Options) *ch.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opt.Address = s.Addr()
	c, err := ch.Dial(ctx, opt)
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr(), err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestSmoke(t *testing.T) {
	s := NewTest(t)
	c := dial(t, s, ch.Options{})
	ctx := testCtx(t)
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	var (
		n proto.ColUInt64
		str proto.ColStr
	)
	if err := c.Do(ctx, ch.Query{
		Body:   "SELECT number AS n, toString(number) AS s FROM numbers(10)",
		Result: proto.Results{{Name: "n", Data: &n}, {Name: "s", Data: &str}},
	}); err != nil {
		t.Fatalf("select: %v", err)
	}
	t.Logf("%v %v", n, str.Rows())
}
