//go:build race

package test

// raceEnabled builds the binaries under test with the race detector when the tests run with
// it, so that a data race in llmgate or llmsim fails the test that provoked it.
const raceEnabled = true
