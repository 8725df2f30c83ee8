package pipeline

import (
	"fmt"
	"os"
	"strings"
	"unicode"

	"github.com/hamba/avro/v2"

	"github.com/pipelined/pipelined/agg"
	"github.com/pipelined/pipelined/internal/avrodec"
	"github.com/pipelined/pipelined/internal/schemas"
)

// SchemaText returns the writer schema: registry (when given, from Pulsar), the configured
// file, or the built-in reference SensorData schema.
func (c *Config) SchemaText(registry string) (string, error) {
	switch {
	case registry != "":
		return registry, nil
	case c.Schema.File != "":
		b, err := os.ReadFile(c.Schema.File)
		if err != nil {
			return "", fmt.Errorf("read schema: %w", err)
		}
		return string(b), nil
	}
	return schemas.SensorData, nil
}

// Decoder compiles the writer schema (see SchemaText) into a decoder for the configured fields.
// A schema that lacks a configured field, or has it with the wrong type, is an error here, at
// start-up, never at the first message.
func (c *Config) Decoder(registry string) (*avrodec.Decoder, error) {
	text, err := c.SchemaText(registry)
	if err != nil {
		return nil, err
	}
	s, err := avro.Parse(text)
	if err != nil {
		return nil, fmt.Errorf("parse schema: %w", err)
	}
	return avrodec.New(s, avrodec.Fields{
		Key:      c.Schema.KeyField,
		Time:     c.Schema.TimeField,
		Status:   c.Schema.StatusField,
		Measures: c.Schema.Measures,
	}, c.Schema.MaxMessageBytes)
}

// Spec returns what every window aggregates.
func (c *Config) Spec() agg.Spec {
	return agg.Spec{Measures: len(c.Schema.Measures), Statuses: c.Schema.StatusValues}
}

// StreamConfig returns the window settings for one partition's stream.
func (c *Config) StreamConfig() agg.StreamConfig {
	sc := agg.StreamConfig{
		Spec:       c.Spec(),
		SizeMs:     c.Window.Size.Milliseconds(),
		DelayMs:    c.Window.WatermarkDelay.Milliseconds(),
		LatenessMs: c.Window.AllowedLateness.Milliseconds(),
		SizeHint:   1024,
	}
	if c.Window.Time == "processing" {
		sc.DelayMs, sc.LatenessMs = 0, 0 // arrival time never runs backwards
	}
	return sc
}

// columnName turns a field name into a ClickHouse column name: batteryLevel -> battery_level.
func columnName(field string) string {
	var b strings.Builder
	for i, r := range field {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			r = '_'
		}
		b.WriteRune(r)
	}
	return b.String()
}
