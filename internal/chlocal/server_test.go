package chlocal

import (
	"context"
	"fmt"
	"math/big"
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
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// exec runs statements that return no rows.
func exec(t testing.TB, c *ch.Client, sql ...string) {
	t.Helper()
	for _, q := range sql {
		if err := c.Do(testCtx(t), ch.Query{Body: q}); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// scalar runs a query returning one String column and returns its rows.
func strings1(t testing.TB, c *ch.Client, sql string) []string {
	t.Helper()
	var col proto.ColStr
	var out []string
	if err := c.Do(testCtx(t), ch.Query{
		Body:   sql,
		Result: proto.Results{{Data: &col}},
		OnResult: func(ctx context.Context, b proto.Block) error {
			for i := range col.Rows() {
				out = append(out, col.Row(i))
			}
			return nil
		},
	}); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func equal[T comparable](t testing.TB, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// readings are the columns the product writes, n rows from a seed.
type readings struct {
	u64  proto.ColUInt64
	i64  proto.ColInt64
	f64  proto.ColFloat64
	str  proto.ColStr
	dt   proto.ColDateTime
	dt64 *proto.ColDateTime64
	u128 proto.ColUInt128
}

func newReadings(n, seed int) *readings {
	r := &readings{dt64: new(proto.ColDateTime64).WithPrecision(proto.PrecisionMilli)}
	for i := range n {
		v := seed + i
		r.u64.Append(uint64(v))
		r.i64.Append(int64(v) - int64(n/2))
		r.f64.Append(float64(v) / 2)
		r.str.Append(fmt.Sprintf("device-%d", v%1000))
		r.dt.Append(time.Unix(1_700_000_000+int64(v%86_400), 0))
		r.dt64.Append(time.UnixMilli(1_700_000_000_000 + int64(v)))
		r.u128.Append(proto.UInt128{Low: uint64(v), High: uint64(v)})
	}
	return r
}

func (r *readings) input() proto.Input {
	return proto.Input{
		{Name: "u64", Data: &r.u64},
		{Name: "i64", Data: &r.i64},
		{Name: "f64", Data: &r.f64},
		{Name: "s", Data: &r.str},
		{Name: "dt", Data: &r.dt},
		{Name: "dt64", Data: r.dt64},
		{Name: "u128", Data: &r.u128},
	}
}

const readingsColumns = `u64 UInt64, i64 Int64, f64 Float64, s String, dt DateTime, dt64 DateTime64(3), u128 UInt128`

// sums are what a SELECT over readings must return.
type sums struct {
	count, u64, strLen, dt uint64
	i64, dt64              int64
	f64                    float64
	u128                   string
}

func (r *readings) sums() sums {
	var s sums
	u128 := new(big.Int)
	for i := range r.u64.Rows() {
		s.count++
		s.u64 += r.u64.Row(i)
		s.i64 += r.i64.Row(i)
		s.f64 += r.f64.Row(i)
		s.strLen += uint64(len(r.str.Row(i)))
		s.dt += uint64(r.dt.Row(i).Unix())
		s.dt64 += r.dt64.Row(i).UnixMilli()
		v := r.u128.Row(i)
		x := new(big.Int).Lsh(new(big.Int).SetUint64(v.High), 64)
		u128.Add(u128, x.Add(x, new(big.Int).SetUint64(v.Low)))
	}
	s.u128 = u128.String()
	return s
}

func selectSums(t testing.TB, c *ch.Client, table string) sums {
	t.Helper()
	var (
		count, u64, strLen, dt proto.ColUInt64
		i64, dt64              proto.ColInt64
		f64                    proto.ColFloat64
		u128                   proto.ColStr
	)
	if err := c.Do(testCtx(t), ch.Query{
		Body: "SELECT count(), sum(u64), sum(i64), sum(f64), sum(length(s)), " +
			"sum(toUnixTimestamp(dt)), sum(toUnixTimestamp64Milli(dt64)), toString(sum(u128)) FROM " + table,
		Result: proto.Results{
			{Data: &count}, {Data: &u64}, {Data: &i64}, {Data: &f64}, {Data: &strLen},
			{Data: &dt}, {Data: &dt64}, {Data: &u128},
		},
	}); err != nil {
		t.Fatalf("select sums from %s: %v", table, err)
	}
	if count.Rows() != 1 {
		t.Fatalf("select sums from %s: %d rows", table, count.Rows())
	}
	return sums{count: count[0], u64: u64[0], i64: i64[0], f64: f64[0], strLen: strLen[0],
		dt: dt[0], dt64: dt64[0], u128: u128.Row(0)}
}

func TestMillionRows(t *testing.T) {
	s := NewTest(t)
	c := dial(t, s, ch.Options{Compression: ch.CompressionLZ4})
	exec(t, c,
		"CREATE DATABASE million",
		"CREATE TABLE million.readings ("+readingsColumns+") ENGINE = MergeTree ORDER BY (s, dt)",
	)
	r := newReadings(1_000_000, 0)
	start := time.Now()
	if err := c.Do(testCtx(t), ch.Query{Body: "INSERT INTO million.readings " + r.input().Columns() + " VALUES", Input: r.input()}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	t.Logf("inserted 1,000,000 rows in %v", time.Since(start))
	equal(t, "sums", selectSums(t, c, "million.readings"), r.sums())
}
