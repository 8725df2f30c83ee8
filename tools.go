//go:build tools

// This file pins modules the project uses only in some builds, so go mod tidy keeps them.
package main

import (
	_ "github.com/puzpuzpuz/xsync/v3"
)
