//go:build !race

package test

// raceEnabled is false: the tests run without the race detector, and so do the binaries.
const raceEnabled = false
