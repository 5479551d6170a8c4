//go:build !race

package gateway

import "testing"

// TestRelayStreamAllocsPerChunk holds the streaming relay to (nearly) no allocation per
// relayed chunk: allocation counts are deterministic, unlike timings. Not built with -race,
// under which sync.Pool drops items on purpose; make unit runs it without -race.
func TestRelayStreamAllocsPerChunk(t *testing.T) {
	const limit = 0.02 // one allocation per 50 chunks; the relay now makes one per 256-chunk stream
	// Not the one-in-ten mode: which requests it samples is random, and a sampled request's
	// allocations would land in one of the two runs this marginal count subtracts.
	for _, mode := range telemetryModes[:3] {
		if got := newHandlerStream(t, mode).allocsPerChunk(50); got > limit {
			t.Errorf("with %s, relaying a chunk allocates %.4f times, want at most %v", mode.name, got, limit)
		}
	}
}
