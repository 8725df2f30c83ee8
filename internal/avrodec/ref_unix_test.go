//go:build unix

package avrodec

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/pipelined/pipelined/agg"
	"github.com/pipelined/pipelined/internal/loadgen"
	"github.com/pipelined/pipelined/internal/schemas"
)

// TestDecodeRefBatchInBounds puts each payload at the very end of a readable page, before one
// that is not: a load past the payload's end faults, where in assembly no bounds check would
// catch it. decodeRefBatch is called without length bounds, so that its own checks are all
// that keep it inside: every prefix of the reference's records and of RefLongs records, and
// every one-byte change of them. What it decodes must be what the careful way decodes.
func TestDecodeRefBatchInBounds(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("decodeRefBatch is assembly on amd64 only; elsewhere it decodes nothing")
	}
	page := syscall.Getpagesize()
	mem, err := syscall.Mmap(-1, 0, 2*page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(mem)
	if err := syscall.Mprotect(mem[page:], syscall.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	try := func(d *Decoder, b []byte) {
		t.Helper()
		p := mem[page-len(b) : page : page]
		copy(p, b)
		var r, want agg.Reading
		var ok bool
		if decodeRefBatch([][]byte{p}, &r, &ok, &d.ref, 0, math.MaxUint) == 0 {
			return
		}
		if err := d.decodeCareful(b, &want); err != nil || !ok || !sameReading(r, want) {
			t.Fatalf("decodeRefBatch(%x) = %+v (ok %v), careful decode = %+v, %v", b, r, ok, want, err)
		}
	}
	sensor := mustDecoder(t, schemas.SensorData, sensorFields)
	long := mustDecoder(t, refLongSchema, refLongFields)
	g := loadgen.New(loadgen.Config{Devices: 100_000, Seed: 8})
	rng := rand.New(rand.NewPCG(9, 10))
	now := time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC).UnixMilli()
	for i := range 200 {
		d, b := sensor, []byte(nil)
		if i%2 == 0 {
			_, b = g.Next(now+int64(i), nil)
		} else {
			d, b = long, mustMarshal(t, refLongSchema, refLongValue(rng))
		}
		for n := range len(b) + 1 {
			try(d, b[:n])
		}
		c := slices.Clone(b)
		for j, orig := range c {
			for _, v := range []byte{0x00, 0x01, 0x7f, 0x80, 0x81, 0xff} {
				c[j] = v
				try(d, c)
			}
			c[j] = orig
		}
	}
}
