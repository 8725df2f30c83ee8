//go:build !race

package chlocal

const raceEnabled = false
