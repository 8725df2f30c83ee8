package chlocal

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/ClickHouse/ch-go/proto"
)

// Exception is an error of the engine, as ClickHouse reports it.
type Exception struct {
	Code    int32  // ClickHouse error code, e.g. 60 for UNKNOWN_TABLE
	Message string // "DB::Exception: ..." as a ClickHouse server sends it
}

// Error returns the text ClickHouse prints: "Code: N. DB::Exception: ...".
func (e *Exception) Error() string {
	return "Code: " + strconv.Itoa(int(e.Code)) + ". " + e.Message
}

// proto returns the Exception packet for the client.
func (e *Exception) proto() proto.Exception {
	return proto.Exception{Code: proto.Error(e.Code), Name: "DB::Exception", Message: e.Message}
}

var (
	exceptionRe = regexp.MustCompile(`(?s)^(?:.*?)Code: (\d+)\. (.*)$`)
	// nestedRe matches the prefix chDB adds when it rethrows an exception.
	nestedRe = regexp.MustCompile(`^DB::Exception: Code: \d+\. `)
	// versionRe matches the version and repeated error name chDB appends
	// to rethrown exceptions.
	versionRe = regexp.MustCompile(` \(version [0-9.]+[^)]*\)\.?( \([A-Z_]+\))?$`)
)

// codeStdException is ClickHouse's STD_EXCEPTION, used for errors that
// carry no ClickHouse code.
const codeStdException = int32(proto.ErrStdException)

// parseException parses chDB's error text "Code: N. DB::Exception: ...".
func parseException(msg string) *Exception {
	msg = strings.TrimSpace(msg)
	if m := exceptionRe.FindStringSubmatch(msg); m != nil {
		if code, err := strconv.ParseInt(m[1], 10, 32); err == nil {
			text := m[2]
			for nestedRe.MatchString(text) {
				text = nestedRe.ReplaceAllString(text, "")
			}
			text = versionRe.ReplaceAllString(text, "")
			if !strings.HasPrefix(text, "DB::Exception") {
				text = "DB::Exception: " + text
			}
			return &Exception{Code: int32(code), Message: text}
		}
	}
	return &Exception{Code: codeStdException, Message: "DB::Exception: " + msg}
}
