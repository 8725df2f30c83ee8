package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/pipelined/pipelined/internal/loadgen"
	"github.com/pipelined/pipelined/internal/pulsarlocal"
)

// backlogShape says how a backlog is generated; its fields name the cache file, so a change
// of shape builds a new one.
type backlogShape struct {
	Messages   int64 // total messages
	Partitions int   // topic partitions
	Devices    int   // devices, ids 0..Devices-1, uniform
	Padded     bool  // SensorDataPadded instead of SensorData
	Producers  int   // simulated producers, each batching per partition
	Rate       int64 // messages per second of event time over all producers
	BaseMs     int64 // event time of the first message
}

// backlogInfo is what the build learned, kept beside the cache file.
type backlogInfo struct {
	Shape        backlogShape
	PayloadBytes int64 // Avro payload bytes of all messages
	Batches      int64 // entries appended
}

func (s backlogShape) file(dir string) string {
	kind := "sensor41"
	if s.Padded {
		kind = "padded300"
	}
	return filepath.Join(dir, fmt.Sprintf("backlog-v1-%s-%d-p%d-d%d-pr%d-r%d-t%d.bin",
		kind, s.Messages, s.Partitions, s.Devices, s.Producers, s.Rate, s.BaseMs))
}

// javaStringHash is pulsar-client-go's default key hash (Java's String.hashCode), which routes
// a keyed message to partition hash % partitions.
func javaStringHash(s string) uint32 {
	var h uint32
	for i := 0; i < len(s); i++ {
		h = 31*h + uint32(s[i])
	}
	return h & 0x7fffffff
}

// batchBuf is one simulated producer's open batch for one partition.
type batchBuf struct {
	msgs  []pulsarlocal.Message
	arena []byte
}

// buildBacklog appends the backlog to topic the way the reference's producers would have sent
// it: Producers producers, messages keyed by device, each producer's batch per partition closed
// every millisecond of event time (batching max delay 1 ms) or at 1000 messages.
func buildBacklog(b *pulsarlocal.Broker, topic string, s backlogShape) (backlogInfo, error) {
	info := backlogInfo{Shape: s}
	gens := make([]*loadgen.Generator, s.Producers)
	for i := range gens {
		gens[i] = loadgen.New(loadgen.Config{Devices: s.Devices, Seed: uint64(i) + 1, Padded: s.Padded})
	}
	keys := make([]string, s.Devices)
	parts := make([]int, s.Devices)
	for d := range keys {
		keys[d] = strconv.Itoa(d)
		parts[d] = int(javaStringHash(keys[d]) % uint32(s.Partitions))
	}
	bufs := make([]batchBuf, s.Producers*s.Partitions)
	var dirty []int
	flush := func(i int) error {
		bb := &bufs[i]
		if len(bb.msgs) == 0 {
			return nil
		}
		if err := b.AppendBatch(topic, i%s.Partitions, bb.msgs); err != nil {
			return err
		}
		info.Batches++
		bb.msgs, bb.arena = bb.msgs[:0], bb.arena[:0]
		return nil
	}
	flushAll := func() error {
		for _, i := range dirty {
			if err := flush(i); err != nil {
				return err
			}
		}
		dirty = dirty[:0]
		return nil
	}
	var scratch []byte
	curMs := int64(-1)
	for j := range s.Messages {
		t := s.BaseMs + j*1000/s.Rate
		if t != curMs {
			if err := flushAll(); err != nil {
				return info, err
			}
			curMs = t
		}
		p := int(j % int64(s.Producers))
		id, payload := gens[p].Next(t, scratch[:0])
		scratch = payload
		info.PayloadBytes += int64(len(payload))
		i := p*s.Partitions + parts[id]
		bb := &bufs[i]
		if len(bb.msgs) == 0 {
			dirty = append(dirty, i)
		}
		// Payloads point into the arena; a grown arena leaves earlier ones in the old array,
		// which stays valid until the flush.
		off := len(bb.arena)
		bb.arena = append(bb.arena, payload...)
		bb.msgs = append(bb.msgs, pulsarlocal.Message{Key: keys[id], Payload: bb.arena[off:len(bb.arena):len(bb.arena)], EventTimeMs: t})
		if len(bb.msgs) == 1000 {
			if err := flush(i); err != nil {
				return info, err
			}
		}
	}
	return info, flushAll()
}

// loadBacklog fills topic from the cache file, building and saving it first if it is missing.
func loadBacklog(b *pulsarlocal.Broker, topic, dir string, s backlogShape, logf func(string, ...any)) (backlogInfo, error) {
	path := s.file(dir)
	var info backlogInfo
	if meta, err := os.ReadFile(path + ".json"); err == nil {
		if err := json.Unmarshal(meta, &info); err != nil {
			return info, fmt.Errorf("backlog metadata %q: %w", path+".json", err)
		}
		f, err := os.Open(path)
		if err == nil {
			defer f.Close()
			t0 := time.Now()
			if err := b.LoadTopic(bufio.NewReaderSize(f, 1<<20)); err != nil {
				return info, fmt.Errorf("load backlog %q: %w", path, err)
			}
			logf("loaded %d messages from %s in %s", s.Messages, path, time.Since(t0).Round(time.Millisecond))
			return info, nil
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return info, err
	}
	if err := b.CreateTopic(topic, s.Partitions); err != nil {
		return info, err
	}
	t0 := time.Now()
	info, err := buildBacklog(b, topic, s)
	if err != nil {
		return info, fmt.Errorf("build backlog: %w", err)
	}
	logf("built %d messages in %d batches in %s", s.Messages, info.Batches, time.Since(t0).Round(time.Millisecond))
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return info, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if err := b.SaveTopic(topic, w); err != nil {
		f.Close()
		return info, fmt.Errorf("save backlog %q: %w", tmp, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return info, err
	}
	if err := f.Close(); err != nil {
		return info, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return info, err
	}
	meta, _ := json.Marshal(info)
	if err := os.WriteFile(path+".json", meta, 0o644); err != nil {
		return info, err
	}
	logf("saved the backlog to %s", path)
	return info, nil
}
