package avrodec

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/pipelined/pipelined/agg"
	"github.com/pipelined/pipelined/internal/loadgen"
	"github.com/pipelined/pipelined/internal/schemas"
)

// refLongSchema has the reference's layout with other widths and roles: the time first, then
// the key (an int, so that the first two varints differ), and a skipped long last.
const refLongSchema = `{"type": "record", "name": "RefLongs", "fields": [
	{"name": "t", "type": "long"}, {"name": "k", "type": "int"},
	{"name": "m0", "type": "double"}, {"name": "m1", "type": "double"},
	{"name": "m2", "type": "double"}, {"name": "m3", "type": "double"},
	{"name": "s", "type": "int"}, {"name": "x", "type": "long"}
]}`

var refLongFields = Fields{Key: "k", Time: "t", Status: "s", Measures: []string{"m0", "m1", "m2", "m3"}}

func refLongValue(rng *rand.Rand) map[string]any {
	v := map[string]any{"t": randLong(rng), "k": randInt(rng), "s": randInt(rng), "x": randLong(rng)}
	for i := range 4 {
		v["m"+string(rune('0'+i))] = randDouble(rng)
	}
	return v
}

// TestPlanRef checks which schemas have the reference's layout, and the roles planRef gives
// their varints.
func TestPlanRef(t *testing.T) {
	int32V := refVarint{lim: refIntLim}
	long := refVarint{lim: refLongLim}
	as := func(v refVarint, slot uint8) refVarint { v.slot = slot; return v }
	for _, tt := range []struct {
		name   string
		schema string
		fields Fields
		ok     bool
		want   refPlan
	}{
		{"SensorData", schemas.SensorData, sensorFields, true,
			refPlan{as(int32V, slotKey), as(int32V, slotNone), as(int32V, slotStatus), as(long, slotTime)}},
		{"SensorData without status", schemas.SensorData, noStatusFields, true,
			refPlan{as(int32V, slotKey), as(int32V, slotNone), as(int32V, slotNone), as(long, slotTime)}},
		{"RefLongs", refLongSchema, refLongFields, true,
			refPlan{as(long, slotTime), as(int32V, slotKey), as(int32V, slotStatus), as(long, slotNone)}},
		{"status long", strings.Replace(refLongSchema, `"name": "s", "type": "int"`, `"name": "s", "type": "long"`, 1), refLongFields, false, refPlan{}},
		{"SensorData with three measures", schemas.SensorData, Fields{Key: "sensorId", Time: "timestamp", Measures: sensorFields.Measures[:3]}, false, refPlan{}},
		{"SensorData shuffled", schemas.SensorData, shuffledFields, false, refPlan{}},
		{"SensorDataPadded", schemas.SensorDataPadded, sensorFields, false, refPlan{}},
		{"Eight", eightSchema, eightFields, false, refPlan{}},
		{"Ints", intSchema, intFields, false, refPlan{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := mustDecoder(t, tt.schema, tt.fields)
			if d.refOK != tt.ok || d.ref != tt.want {
				t.Fatalf("reference plan %+v (ok %v), want %+v (ok %v); fast plan %+v", d.ref, d.refOK, tt.want, tt.ok, d.fast)
			}
			if d.refOK && d.fastMin < refLen { // decodeRef reads that much without checking
				t.Fatalf("fast plan's shortest payload %d bytes, reference layout's %d", d.fastMin, refLen)
			}
		})
	}
}

// TestDecodeRefStaysRef checks that the reference's records decode with decodeRef alone, which
// the agreement tests cannot tell: where decodeRef gives up, the fast plan gives the same
// answers, only slower. The decoder's fast plan is taken away, so that giving up ends in
// the careful way, which sets stepIndex.
func TestDecodeRefStaysRef(t *testing.T) {
	d := mustDecoder(t, schemas.SensorData, sensorFields)
	noFast := *d
	noFast.fast = nil
	g := loadgen.New(loadgen.Config{Devices: 100_000, Seed: 3})
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC).UnixMilli()
	for i := range 10_000 {
		_, b := g.Next(now+int64(i), nil)
		const sentinel = -7
		noFast.stepIndex = sentinel
		var got, want agg.Reading
		if err := noFast.Decode(b, &got); err != nil || noFast.stepIndex != sentinel {
			t.Fatalf("Decode(%x) = %v, went past decodeRef (step %d)", b, err, noFast.stepIndex)
		}
		if err := d.decodeCareful(b, &want); err != nil || !sameReading(got, want) {
			t.Fatalf("Decode(%x) = %+v, careful decode = %+v, %v", b, got, want, err)
		}
	}
}

// TestDecodeRefBatchStaysRef is TestDecodeRefStaysRef for DecodeBatch: on amd64 the reference's
// records decode in decodeRefBatch alone, a batch at a time, equal to Decode's; elsewhere
// decodeRefBatch decodes none and DecodeBatch is Decode for each.
func TestDecodeRefBatchStaysRef(t *testing.T) {
	d := mustDecoder(t, schemas.SensorData, sensorFields)
	g := loadgen.New(loadgen.Config{Devices: 100_000, Seed: 5})
	now := time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC).UnixMilli()
	bs := make([][]byte, 10_000)
	for i := range bs {
		_, bs[i] = g.Next(now+int64(i), nil)
	}
	rs, ok := make([]agg.Reading, len(bs)), make([]bool, len(bs))
	want := 0
	if runtime.GOARCH == "amd64" {
		want = len(bs)
	}
	if n := decodeRefBatch(bs, &rs[0], &ok[0], &d.ref, d.fastMin, d.fastSpan); n != want {
		t.Fatalf("decodeRefBatch decoded %d of %d: gave up on %x", n, len(bs), bs[n])
	}
	for i, b := range bs {
		var r agg.Reading
		if err := d.Decode(b, &r); err != nil || ok[i] != (i < want) || i < want && !sameReading(rs[i], r) {
			t.Fatalf("decodeRefBatch(%x) = %+v (ok %v), Decode = %+v, %v", b, rs[i], ok[i], r, err)
		}
	}
}

// TestDecodeBatchMaxBytes decodes the reference's records with a limit that the longer ones
// exceed: DecodeBatch must fail those as Decode does (oversized), and decode the others.
func TestDecodeBatchMaxBytes(t *testing.T) {
	d, err := New(avro.MustParse(schemas.SensorData), sensorFields, 42)
	if err != nil {
		t.Fatal(err)
	}
	g := loadgen.New(loadgen.Config{Devices: 100_000, Seed: 6})
	now := time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC).UnixMilli()
	lens := map[int]int{}
	for i := range 2000 {
		_, b := g.Next(now+int64(i), nil)
		lens[len(b)]++
		checkFastCareful(t, d, b)
	}
	if lens[42] == 0 || lens[43] == 0 {
		t.Fatalf("record lengths %v: want some of 42 bytes and some of 43", lens)
	}
}

// TestUvarintWord checks uvarintWord against encoding/binary on random words and on varints
// of every length: the same varint where one ends within the word, and a length of 9 where
// none does.
func TestUvarintWord(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	words := []uint64{0, math.MaxUint64, 0x8080808080808080, 0x7f7f7f7f7f7f7f7f}
	for range 10000 {
		words = append(words, rng.Uint64(), rng.Uint64()|0x8080808080808080>>(8*rng.IntN(8)))
	}
	for n := range 11 {
		var b [16]byte
		binary.PutUvarint(b[:], uint64(1)<<(7*n)-1) // n 7-bit groups: max(n, 1) bytes
		words = append(words, binary.LittleEndian.Uint64(b[:8]))
	}
	for _, x := range words {
		v, n := uvarintWord(x)
		bv, bn := binary.Uvarint(binary.LittleEndian.AppendUint64(nil, x))
		if bn <= 0 {
			bv, bn = v, 9 // no varint ends within the word; the value is not used
		}
		if v != bv || n != bn {
			t.Fatalf("uvarintWord(%#x) = %d, %d; want %d, %d", x, v, n, bv, bn)
		}
	}
}
