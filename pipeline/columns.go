package pipeline

import (
	"strings"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/pipelined/pipelined/agg"
)

// aggColumns are one writer's columns for the aggregate table, owned for the writer's life and
// reset (keeping capacity) before each block.
type aggColumns struct {
	windowStart proto.ColDateTime
	device      proto.ColInt64
	partition   proto.ColUInt16
	count       proto.ColUInt64
	first, last proto.ColDateTime64
	stats       []proto.ColFloat64 // min, max, sum per measure
	statuses    []proto.ColUInt64
	through     proto.ColUInt128

	insertInput
}

// insertInput is a table's columns as an INSERT sends them.
type insertInput struct {
	input proto.Input
	names string // "(a, b, ...)" for the INSERT
}

// insert is the INSERT into table of what the columns hold.
func (in *insertInput) insert(table string) ch.Query {
	return ch.Query{Body: "INSERT INTO " + table + " " + in.names + " VALUES", Input: in.input}
}

func newAggColumns(spec agg.Spec, measures []string) *aggColumns {
	c := &aggColumns{
		stats:    make([]proto.ColFloat64, 3*len(measures)),
		statuses: make([]proto.ColUInt64, len(spec.Statuses)),
	}
	c.first.WithPrecision(proto.PrecisionMilli)
	c.last.WithPrecision(proto.PrecisionMilli)
	c.input = proto.Input{
		{Name: "window_start", Data: &c.windowStart},
		{Name: "device_id", Data: &c.device},
		{Name: "source_partition", Data: &c.partition},
		{Name: "count", Data: &c.count},
		{Name: "first_event", Data: noInfer{&c.first}},
		{Name: "last_event", Data: noInfer{&c.last}},
	}
	for i, m := range measures {
		c.input = append(c.input,
			proto.InputColumn{Name: m + "_min", Data: &c.stats[3*i]},
			proto.InputColumn{Name: m + "_max", Data: &c.stats[3*i+1]},
			proto.InputColumn{Name: m + "_sum", Data: &c.stats[3*i+2]})
	}
	for i, s := range spec.Statuses {
		c.input = append(c.input, proto.InputColumn{Name: statusColumn(s), Data: &c.statuses[i]})
	}
	c.input = append(c.input, proto.InputColumn{Name: "flushed_through", Data: &c.through})
	c.names = inputNames(c.input)
	return c
}

// noInfer hides a column's Infer from ch-go: the server names the table's type,
// SimpleAggregateFunction(min, DateTime64(3, 'UTC')), which ColDateTime64 cannot parse, and
// converts the DateTime64(3) we send by itself.
type noInfer struct{ proto.ColInput }

func inputNames(in proto.Input) string {
	names := make([]string, len(in))
	for i, col := range in {
		names[i] = col.Name
	}
	return "(" + strings.Join(names, ", ") + ")"
}

// reset empties the columns, keeping their capacity.
func (c *aggColumns) reset() {
	c.input.Reset()
	c.first.Reset() // behind noInfer, so Input.Reset does not reach them
	c.last.Reset()
}

// fill appends b's rows. It allocates nothing once the columns have grown to the largest batch.
func (c *aggColumns) fill(b *block) {
	w := b.window
	start := proto.DateTime(w.Start / 1000)
	part := uint16(b.partition)
	through := b.cut.UInt128()
	for i := range w.Len() {
		c.windowStart.AppendRaw(start)
		c.device.Append(w.Key(i))
		c.partition.Append(part)
		c.count.Append(uint64(w.Count(i)))
		first, last := w.EventTimes(i)
		c.first.AppendRaw(proto.DateTime64(first))
		c.last.AppendRaw(proto.DateTime64(last))
		for m := range len(c.stats) / 3 {
			lo, hi, sum := w.Measure(i, m)
			c.stats[3*m].Append(lo)
			c.stats[3*m+1].Append(hi)
			c.stats[3*m+2].Append(sum)
		}
		for j := range c.statuses {
			c.statuses[j].Append(uint64(w.StatusCount(i, j)))
		}
		c.through.Append(through)
	}
}

// lateColumns are one writer's columns for the late table.
type lateColumns struct {
	partition   proto.ColUInt16
	position    proto.ColUInt128
	device      proto.ColInt64
	event       proto.ColDateTime64
	windowStart proto.ColDateTime
	received    proto.ColDateTime64
	status      proto.ColInt32
	values      []proto.ColFloat64

	insertInput
}

func newLateColumns(measures []string) *lateColumns {
	c := &lateColumns{values: make([]proto.ColFloat64, len(measures))}
	c.event.WithPrecision(proto.PrecisionMilli)
	c.received.WithPrecision(proto.PrecisionMilli)
	c.input = proto.Input{
		{Name: "source_partition", Data: &c.partition},
		{Name: "message_position", Data: &c.position},
		{Name: "device_id", Data: &c.device},
		{Name: "event_time", Data: &c.event},
		{Name: "window_start", Data: &c.windowStart},
		{Name: "received_at", Data: &c.received},
		{Name: "status", Data: &c.status},
	}
	for i, m := range measures {
		c.input = append(c.input, proto.InputColumn{Name: m, Data: &c.values[i]})
	}
	c.names = inputNames(c.input)
	return c
}

func (c *lateColumns) reset() { c.input.Reset() }

func (c *lateColumns) fill(b *block) {
	l := b.late
	for i := range l.pos {
		r := &l.readings[i]
		c.partition.Append(uint16(b.partition))
		c.position.Append(l.pos[i].UInt128())
		c.device.Append(r.Key)
		c.event.AppendRaw(proto.DateTime64(r.TimeMs))
		c.windowStart.AppendRaw(proto.DateTime(lateWindowStart(r.TimeMs, b.lateSizeMs) / 1000))
		c.received.AppendRaw(proto.DateTime64(l.received[i]))
		c.status.Append(r.Status)
		for m := range c.values {
			c.values[m].Append(r.Values[m])
		}
	}
}

func lateWindowStart(t, size int64) int64 {
	m := t % size
	if m < 0 {
		m += size
	}
	return t - m
}
