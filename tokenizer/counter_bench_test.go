package tokenizer

import (
	"strings"
	"testing"
)

// prose is about 1 KB of plain English, the size of a typical short prompt.
const prose = `The gateway sits between the applications of a company and the inference servers that run
its language models. Every request passes through it, so it sees how long the first token takes,
how quickly the rest of the answer follows, and how many tokens each team spends. When a server
reports its own usage, the gateway trusts that number. When it does not, the gateway counts the
tokens itself, and that estimate has to be cheap enough to run on every streamed chunk without
slowing the stream down. Most chunks are short: a word or two, sometimes a single punctuation mark,
occasionally a line break. Prompts are longer and arrive only once per request, but a busy fleet
still sees thousands of them every second. Neither path may allocate without need, hold a lock
across input or output, or start work that outlives the request. The numbers it produces feed
dashboards, rate limits and cost reports, so they must be steady even when they are only close.`

// delta is a short streamed chunk, about 20 bytes.
const delta = " the model replied,"

func BenchmarkCount(b *testing.B) {
	cases := []struct {
		name, text string
	}{
		{"prose_1KB", prose},
		{"delta_20B", delta},
	}
	for _, enc := range []string{CL100KBase, O200KBase} {
		c := mustNew(b, enc)
		for _, tc := range cases {
			b.Run(enc+"/"+tc.name, func(b *testing.B) {
				b.SetBytes(int64(len(tc.text)))
				b.ReportAllocs()
				tokens := 0
				for b.Loop() {
					tokens += c.Count(tc.text)
				}
				b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
			})
		}
	}
}

func BenchmarkCountBytes(b *testing.B) {
	c := mustNew(b, CL100KBase)
	text := []byte(delta)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	tokens := 0
	for b.Loop() {
		tokens += c.CountBytes(text)
	}
	b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
}

func BenchmarkCountMessages(b *testing.B) {
	c := mustNew(b, CL100KBase)
	b.ReportAllocs()
	tokens := 0
	for b.Loop() {
		tokens += c.CountMessages(cookbookMessages)
	}
	b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
}

func TestBenchmarkInputs(t *testing.T) {
	t.Parallel()
	if n := len(prose); n < 900 || n > 1100 {
		t.Errorf("len(prose) = %d, want about 1024", n)
	}
	if n := len(delta); n < 15 || n > 25 {
		t.Errorf("len(delta) = %d, want about 20", n)
	}
	if strings.TrimSpace(delta) == "" {
		t.Errorf("delta %q is blank", delta)
	}
}

// BenchmarkCountLongRun counts 64 KiB without any whitespace, the input that made the
// pre-tokenizer and the BPE merge quadratic before Count split its input into segments.
func BenchmarkCountLongRun(b *testing.B) {
	text := strings.Repeat("x", 64<<10)
	c := mustNew(b, CL100KBase)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	tokens := 0
	for b.Loop() {
		tokens += c.Count(text)
	}
	b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
}
