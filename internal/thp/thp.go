// Package thp reads and sets the host's transparent huge pages (THP) mode, the kernel setting
// that decides whether the Go heap is backed by 2 MiB pages.
//
// The Go runtime (since 1.21.1) never asks for huge pages with madvise, so its heap gets them
// only in the system-wide mode "always"; in "madvise", the default of many distributions, it
// runs on 4 KiB pages. pipelined's heap is some 300 MB of message objects and window rows
// read in no particular order, so each miss in the data cache is also a miss in the TLB and a
// page-table walk: on the backlog benchmark, "always" cut pipelined's CPU per message by about
// 15 % (bench/RESULTS.md, phase 17). pipelined logs the mode at start; the Ansible role sets
// it (pipelined_transparent_hugepages); the benchmark harness sets it for its run.
package thp

import (
	"fmt"
	"os"
	"slices"
	"strings"
)

// EnabledPath is the kernel's switch.
const EnabledPath = "/sys/kernel/mm/transparent_hugepage/enabled"

// Modes are the values EnabledPath takes.
var Modes = []string{"always", "madvise", "never"}

// Parse returns the selected mode of the switch's content, the word in brackets:
// "always [madvise] never" is "madvise".
func Parse(content string) (string, error) {
	for _, f := range strings.Fields(content) {
		if len(f) > 2 && f[0] == '[' && f[len(f)-1] == ']' {
			return f[1 : len(f)-1], nil
		}
	}
	return "", fmt.Errorf("transparent huge pages: no [selected] mode in %q", strings.TrimSpace(content))
}

// Mode reads the host's mode from path (EnabledPath but in tests).
func Mode(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("transparent huge pages: %w", err)
	}
	m, err := Parse(string(b))
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Set writes mode to path and returns the mode it replaced; it needs root.
func Set(path, mode string) (was string, err error) {
	if !slices.Contains(Modes, mode) {
		return "", fmt.Errorf("transparent huge pages: mode %q is not one of %s", mode, strings.Join(Modes, ", "))
	}
	if was, err = Mode(path); err != nil {
		return "", err
	}
	if was == mode {
		return was, nil
	}
	if err := os.WriteFile(path, []byte(mode), 0); err != nil {
		return was, fmt.Errorf("transparent huge pages: set %q: %w", mode, err)
	}
	if now, err := Mode(path); err != nil || now != mode {
		return was, fmt.Errorf("transparent huge pages: wrote %q to %s, which now reads %q (%v)", mode, path, now, err)
	}
	return was, nil
}
