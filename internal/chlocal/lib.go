package chlocal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ChdbVersion is the pinned version of the npm package
// @chdb/lib-linux-x64-gnu that fetch-chdb.sh downloads. Keep the two in sync.
const ChdbVersion = "26.5.3"

// ErrNoLibrary is wrapped by LibPath's error when libchdb.so is not found.
var ErrNoLibrary = errors.New("libchdb.so not found")

// LibPath returns the path of libchdb.so: $CHDB_LIB_PATH if set, else
// ${PIPELINED_CACHE:-$HOME/.cache/pipelined}/chdb/<ChdbVersion>/libchdb.so.
// A missing file is an error wrapping ErrNoLibrary that says how to get it.
func LibPath() (string, error) {
	if p := os.Getenv("CHDB_LIB_PATH"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("CHDB_LIB_PATH=%q: %w: %w", p, ErrNoLibrary, err)
		}
		return p, nil
	}
	p, err := cachePath()
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%w at %q: run `make chdb` (or internal/chlocal/fetch-chdb.sh) "+
			"to download chDB %s once, or set CHDB_LIB_PATH", ErrNoLibrary, p, ChdbVersion)
	}
	return p, nil
}

// cachePath is where fetch-chdb.sh puts the library.
func cachePath() (string, error) {
	dir := os.Getenv("PIPELINED_CACHE")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("locating the chDB cache: set PIPELINED_CACHE or CHDB_LIB_PATH: %w", err)
		}
		dir = filepath.Join(home, ".cache", "pipelined")
	}
	return filepath.Join(dir, "chdb", ChdbVersion, "libchdb.so"), nil
}
