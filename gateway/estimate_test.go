package gateway

import (
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/llmgate/llmgate/tokenizer"
)

// TestKeptTextIsBounded: a long answer without usage keeps at most maxKeptText bytes, and
// its output estimate scales that sample to the whole length.
func TestKeptTextIsBounded(t *testing.T) {
	t.Parallel()
	c, err := tokenizer.New(defaultTokenizer)
	if err != nil {
		t.Fatal(err)
	}
	piece := []byte("The quick brown fox jumps over the lazy dog, again and again. ")
	var st requestState
	var full strings.Builder
	for full.Len() < 1<<20 {
		st.keepText(piece)
		full.Write(piece)
	}
	if len(st.streamed) != maxKeptText {
		t.Errorf("kept %d bytes of a 1 MiB answer, want %d", len(st.streamed), maxKeptText)
	}
	want := float64(c.Count(full.String()))
	if got := float64(st.outputEstimate(c)); math.Abs(got-want) > 0.02*want {
		t.Errorf("outputEstimate = %v, want %v within 2%%", got, want)
	}
	st.usage = usage{ok: true, output: 1}
	if st.keepText(piece); len(st.streamed) != maxKeptText || st.skippedText != full.Len()-maxKeptText {
		t.Errorf("after usage arrived, keepText still measured or kept text")
	}
}

// TestNoEstimateWithoutBackend: a request that no backend received gets no token estimate.
func TestNoEstimateWithoutBackend(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, closedURL(t))
	resp := f.post(t, "/v1/completions", `{"model":"m","prompt":["a b c","d e f"]}`)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status = %d, want 502", resp.StatusCode)
	}
	f.srv.Close()
	if v := f.metric(t, "llmgate_tokens_total", map[string]string{"type": "input"}); v != -1 {
		t.Errorf("tokens_total{type=input} = %v, want no series", v)
	}
}
