package sim

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkChatStream measures one streamed 16-token chat completion over loopback with no
// simulated delays: the simulator's own cost per request.
func BenchmarkChatStream(b *testing.B) {
	_, ts := startServer(b, func(c *Config) { c.TTFT, c.ITL = 0, 0 })
	const body = `{"stream":true,"max_tokens":16,"stream_options":{"include_usage":true},` +
		`"messages":[{"role":"user","content":"Tell me a story."}]}`
	client := ts.Client()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := client.Post(ts.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatalf("POST %s: %v", body, err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("POST %s: status %d, read %v", body, resp.StatusCode, err)
		}
		resp.Body.Close()
	}
}

// BenchmarkEmbedding measures building one 384-float embedding.
func BenchmarkEmbedding(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		embedding(1, "sim-model", "The quick brown fox jumps over the lazy dog.", 384)
	}
}
