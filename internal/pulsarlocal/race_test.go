//go:build race

package pulsarlocal

// raceEnabled scales down message counts under the race detector.
const raceEnabled = true
