package chlocal

import (
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// ProcessDataDir makes parent/chlocal-<pid> and removes what processes that are gone left
// there, not what a running one uses.
func TestProcessDataDir(t *testing.T) {
	parent := t.TempDir()
	gone := osexec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	left := func(pid int) string { return filepath.Join(parent, "chlocal-"+strconv.Itoa(pid)) }
	for _, pid := range []int{gone.Process.Pid, os.Getppid()} {
		if err := os.MkdirAll(left(pid), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := ProcessDataDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if dir != left(os.Getpid()) {
		t.Errorf("directory %q, want %q", dir, left(os.Getpid()))
	}
	for path, want := range map[string]bool{dir: true, left(gone.Process.Pid): false, left(os.Getppid()): true} {
		if _, err := os.Stat(path); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", path, err == nil, want)
		}
	}
}
