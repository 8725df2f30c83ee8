package thp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"always [madvise] never\n", "madvise", ""},
		{"[always] madvise never", "always", ""},
		{"always madvise [never]\n", "never", ""},
		{"always defer defer+madvise [madvise] never", "madvise", ""}, // the defrag switch's shape
		{"always madvise never\n", "", `no [selected] mode in "always madvise never"`},
		{"[] always", "", "no [selected] mode"},
		{"", "", "no [selected] mode"},
	} {
		got, err := Parse(c.in)
		if got != c.want || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("Parse(%q) = %q, %v; want %q, error containing %q", c.in, got, err, c.want, c.err)
		}
	}
}

// Set on a regular file stands in for the kernel's switch, which reads back with the new
// mode in brackets; a file reads back what was written, without brackets, so Set must see
// that the write did not take.
func TestSet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "enabled")
	if err := os.WriteFile(path, []byte("always [madvise] never\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Set(path, "sometimes"); err == nil || !strings.Contains(err.Error(), `mode "sometimes" is not one of always, madvise, never`) {
		t.Errorf("Set of an unknown mode: %v", err)
	}
	if was, err := Set(path, "madvise"); was != "madvise" || err != nil {
		t.Errorf("Set of the current mode: %q, %v; want madvise and no write", was, err)
	}
	if b, _ := os.ReadFile(path); string(b) != "always [madvise] never\n" {
		t.Errorf("Set of the current mode wrote the switch: it reads %q", b)
	}
	was, err := Set(path, "always")
	if was != "madvise" || err == nil || !strings.Contains(err.Error(), `now reads ""`) {
		t.Errorf("Set(always) on a plain file: %q, %v; want madvise and an error that the write did not take", was, err)
	}
	if _, err := Mode(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Mode of a missing file: %v, want an error naming it", err)
	}
}
