package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommandLine(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("pulsar:\n  url: http://x\n  bogus: 1\nwindow:\n  size: 1ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args     []string
		code     int
		out, err []string // substrings of stdout and stderr
	}{
		{[]string{"check", "-c", "config.yaml"}, 0, []string{"config.yaml: ok"}, nil},
		{[]string{"check", "-c", bad}, 1, nil, []string{"3 configuration problem(s)", "'pulsar' has invalid keys: bogus", "pulsar.url:", "window.size: 1ms"}},
		{[]string{"check", "-c", "/nonexistent.yaml"}, 1, nil, []string{"/nonexistent.yaml"}},
		{[]string{"version"}, 0, []string{"pipelined "}, nil},
		{[]string{"run", "-h"}, 0, nil, []string{"Usage: pipelined run -c FILE"}},
		{[]string{"check", "-h"}, 0, nil, []string{"Usage: pipelined check -c FILE"}},
		{[]string{"produce", "-h"}, 0, nil, []string{"Usage: pipelined produce", "-rate"}},
		{[]string{"check", "-x"}, 2, nil, []string{"flag provided but not defined: -x"}},
		{[]string{"frobnicate"}, 2, nil, []string{`unknown command "frobnicate"`}},
		{nil, 2, nil, []string{"Usage:"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(tc.args, &out, &errb); code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out.String(), errb.String())
			}
			for _, s := range tc.out {
				if !strings.Contains(out.String(), s) {
					t.Fatalf("stdout lacks %q:\n%s", s, out.String())
				}
			}
			for _, s := range tc.err {
				if !strings.Contains(errb.String(), s) {
					t.Fatalf("stderr lacks %q:\n%s", s, errb.String())
				}
			}
		})
	}
}
