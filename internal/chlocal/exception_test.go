package chlocal

import "testing"

func TestParseException(t *testing.T) {
	for _, tt := range []struct {
		in   string
		code int32
		msg  string
	}{
		{
			in:   "Code: 60. DB::Exception: Unknown table expression identifier 'x' in scope SELECT * FROM x. (UNKNOWN_TABLE)",
			code: 60,
			msg:  "DB::Exception: Unknown table expression identifier 'x' in scope SELECT * FROM x. (UNKNOWN_TABLE)",
		},
		{
			in: "Code: 6. DB::Exception: Code: 6. DB::Exception: Cannot parse string 'a' as UInt64: " +
				"While executing File. (CANNOT_PARSE_TEXT) (version 26.5.1.1). (CANNOT_PARSE_TEXT)\n",
			code: 6,
			msg:  "DB::Exception: Cannot parse string 'a' as UInt64: While executing File. (CANNOT_PARSE_TEXT)",
		},
		{
			in:   "Error: std::bad_alloc",
			code: 1001,
			msg:  "DB::Exception: Error: std::bad_alloc",
		},
		{
			in:   "Code: 62. Syntax error: failed at position 1",
			code: 62,
			msg:  "DB::Exception: Syntax error: failed at position 1",
		},
	} {
		got := parseException(tt.in)
		if got.Code != tt.code || got.Message != tt.msg {
			t.Errorf("parseException(%q) = %d %q, want %d %q", tt.in, got.Code, got.Message, tt.code, tt.msg)
		}
	}
}
