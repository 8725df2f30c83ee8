package avrodec

import (
	"errors"
	"strconv"
)

// Reasons a payload fails to decode. Each is a short constant usable as a metric label.
const (
	ReasonEmpty         = "empty"          // zero-length payload
	ReasonOversized     = "oversized"      // payload longer than the Decoder's maxBytes
	ReasonTruncated     = "truncated"      // the payload ended inside the record
	ReasonMalformed     = "malformed"      // bad varint, negative length, bad union or enum index, bad boolean...
	ReasonTrailingBytes = "trailing_bytes" // bytes left after the record, e.g. a record of another schema
)

// Reasons returns every reason a Decode error can carry, for registering metric labels up front.
func Reasons() []string {
	return []string{ReasonEmpty, ReasonOversized, ReasonTruncated, ReasonMalformed, ReasonTrailingBytes}
}

// Error is a payload that failed to decode.
//
// Decode returns a pointer to an Error owned by the Decoder, so that failing costs no allocation:
// it is valid until the next call to Decode. Copy the struct (e := *err) to keep it longer.
type Error struct {
	Reason string // one of Reasons()
	Detail string // what Value is, e.g. "negative length"; empty when Reason says it all
	Field  string // the writer field being read; empty for problems with the payload as a whole
	Offset int    // byte offset where the bad item starts
	Len    int    // payload length
	Value  int64  // the bad value (length, union or enum index, ...), when Detail names one
}

// Error names the reason, where it happened and the bad value.
func (e *Error) Error() string {
	b := make([]byte, 0, 128)
	b = append(b, "avro decode: "...)
	b = append(b, e.Reason...)
	switch e.Reason {
	case ReasonEmpty:
		b = append(b, " payload"...)
		return string(b)
	case ReasonOversized:
		b = append(b, " payload: "...)
		b = strconv.AppendInt(b, int64(e.Len), 10)
		b = append(b, " bytes, max "...)
		b = strconv.AppendInt(b, e.Value, 10)
		return string(b)
	}
	switch {
	case e.Reason == ReasonTrailingBytes:
		b = append(b, ": "...)
		b = strconv.AppendInt(b, e.Value, 10)
		b = append(b, " bytes after the record, which ends"...)
	case e.Detail != "":
		b = append(b, ": "...)
		b = append(b, e.Detail...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, e.Value, 10)
	}
	if e.Field != "" {
		b = append(b, " in field "...)
		b = strconv.AppendQuote(b, e.Field)
	}
	b = append(b, " at offset "...)
	b = strconv.AppendInt(b, int64(e.Offset), 10)
	b = append(b, " of "...)
	b = strconv.AppendInt(b, int64(e.Len), 10)
	b = append(b, " bytes"...)
	return string(b)
}

// Errors New returns, wrapped with the field and the problem.
var (
	ErrNotRecord       = errors.New("schema is not a record")
	ErrMissingField    = errors.New("field not in schema")
	ErrFieldType       = errors.New("unsupported field type")
	ErrTooManyMeasures = errors.New("too many measures")
	ErrDuplicateField  = errors.New("field configured twice")
)
