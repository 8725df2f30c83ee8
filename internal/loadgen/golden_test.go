package loadgen

import (
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestGolden pins the first messages of seed 1: a change in the generator's output (a new
// distribution, another random source) changes every benchmark's data set, so it must be
// deliberate. Run with -update to accept one.
func TestGolden(t *testing.T) {
	for _, tt := range []struct {
		file string
		cfg  Config
	}{
		{"seed1.hex", Config{Seed: 1}},
		{"seed1-padded.hex", Config{Seed: 1, Padded: true}},
	} {
		t.Run(tt.file, func(t *testing.T) {
			g := New(tt.cfg)
			var out []byte
			for i := range 4 {
				_, msg := g.Next(1_764_000_000_000+int64(i), nil)
				out = append(out, hex.EncodeToString(msg)...)
				out = append(out, '\n')
			}
			path := filepath.Join("testdata", tt.file)
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if string(out) != string(want) {
				t.Fatalf("messages differ from %s:\n%s\nwant:\n%s", path, out, want)
			}
		})
	}
}
