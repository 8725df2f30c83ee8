package tests

import (
	"testing"

	"github.com/pipelined/pipelined/internal/chlocal"
)

// TestMain lets chlocal shut the engine down in order (chDB must not be torn down by exit).
func TestMain(m *testing.M) { chlocal.Main(m) }
