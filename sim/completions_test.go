package sim

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/llmgate/llmgate/tokenizer"
)

// streamed is a stream split by choice.
type streamed struct {
	chunks  []wireChunk
	texts   map[int]string // content per choice
	tokens  map[int]int    // content chunks per choice
	finish  map[int]string // finish reason per choice
	roles   map[int]int    // role chunks per choice
	usage   *wireUsage     // the usage-only chunk's usage
	usageAt int            // index of the usage-only chunk, or -1
}

// parseStream checks the common shape of a completion stream and splits it by choice.
func parseStream(t *testing.T, events []string, object, model string) streamed {
	t.Helper()
	if len(events) == 0 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("stream does not end with [DONE]: %q", events)
	}
	s := streamed{texts: map[int]string{}, tokens: map[int]int{}, finish: map[int]string{},
		roles: map[int]int{}, usageAt: -1}
	for i, ev := range events[:len(events)-1] {
		c := decodeJSON[wireChunk](t, []byte(ev))
		if c.Object != object || c.Model != model || c.ID == "" || c.Created == 0 {
			t.Errorf("event %d %s: want object %q, model %q, an id and created", i, ev, object, model)
		}
		if len(s.chunks) > 0 && c.ID != s.chunks[0].ID {
			t.Errorf("event %d id = %q, want %q as before", i, c.ID, s.chunks[0].ID)
		}
		s.chunks = append(s.chunks, c)
		if len(c.Choices) == 0 {
			if !strings.Contains(ev, `"choices":[]`) || c.Usage == nil {
				t.Errorf("event %d %s: a chunk without choices must be the usage-only chunk", i, ev)
			}
			if s.usageAt >= 0 {
				t.Errorf("event %d: second usage-only chunk", i)
			}
			s.usage, s.usageAt = c.Usage, i
			continue
		}
		if len(c.Choices) != 1 {
			t.Errorf("event %d %s: %d choices, want 1", i, ev, len(c.Choices))
			continue
		}
		ch := c.Choices[0]
		if _, done := s.finish[ch.Index]; done {
			t.Errorf("event %d %s: choice %d continues after its finish chunk", i, ev, ch.Index)
		}
		var content *string
		if object == "chat.completion.chunk" {
			if ch.Delta == nil {
				t.Fatalf("event %d %s: no delta", i, ev)
			}
			if ch.Delta.Role != nil {
				if *ch.Delta.Role != "assistant" || s.tokens[ch.Index] > 0 || s.roles[ch.Index] > 0 {
					t.Errorf("event %d %s: role chunk must come once, first, with role assistant", i, ev)
				}
				s.roles[ch.Index]++
				continue
			}
			content = ch.Delta.Content
		} else {
			content = ch.Text
		}
		switch {
		case ch.FinishReason != nil:
			if content != nil && *content != "" {
				t.Errorf("event %d %s: finish chunk carries content", i, ev)
			}
			s.finish[ch.Index] = *ch.FinishReason
		case content == nil:
			t.Errorf("event %d %s: neither content nor finish_reason", i, ev)
		default:
			s.texts[ch.Index] += *content
			s.tokens[ch.Index]++
		}
	}
	return s
}

func TestChatStream(t *testing.T) {
	t.Parallel()
	_, ts := startServer(t, nil)
	counter := newCounter(t)
	tests := []struct {
		name       string
		params     string
		n, length  int
		wantFinish string
	}{
		{name: "max_tokens", params: `"max_tokens":5`, n: 1, length: 5, wantFinish: "length"},
		{name: "max_completion_tokens", params: `"max_completion_tokens":4,"max_tokens":9`, n: 1, length: 4, wantFinish: "length"},
		{name: "default length", params: `"temperature":0.5`, n: 1, length: 8, wantFinish: "stop"},
		{name: "n=2", params: `"max_tokens":3,"n":2`, n: 2, length: 3, wantFinish: "length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := fmt.Sprintf(`{"model":"sim-model","stream":true,"messages":[{"role":"user","content":"Hello %s"}],%s}`, tt.name, tt.params)
			s := parseStream(t, stream(t, ts, "/v1/chat/completions", body), "chat.completion.chunk", "sim-model")
			if s.usageAt >= 0 {
				t.Errorf("%s: usage-only chunk sent without include_usage", body)
			}
			for _, c := range s.chunks {
				if c.Usage != nil {
					t.Errorf("%s: usage on a chunk without stream_options", body)
				}
			}
			for i := range tt.n {
				if s.roles[i] != 1 {
					t.Errorf("%s choice %d: %d role chunks, want 1", body, i, s.roles[i])
				}
				if s.tokens[i] != tt.length {
					t.Errorf("%s choice %d: %d content chunks, want %d", body, i, s.tokens[i], tt.length)
				}
				if got := counter.Count(s.texts[i]); got != tt.length {
					t.Errorf("%s choice %d: Count(%q) = %d, want %d", body, i, s.texts[i], got, tt.length)
				}
				if s.finish[i] != tt.wantFinish {
					t.Errorf("%s choice %d: finish_reason = %q, want %q", body, i, s.finish[i], tt.wantFinish)
				}
			}
			if len(s.texts) != tt.n {
				t.Errorf("%s: %d choices, want %d", body, len(s.texts), tt.n)
			}
		})
	}
}

func TestChatStreamUsage(t *testing.T) {
	t.Parallel()
	_, ts := startServer(t, nil)
	counter := newCounter(t)
	msgs := []tokenizer.Message{{Role: "system", Content: "Be brief."}, {Role: "user", Name: "ann", Content: "Count to ten."}}
	wantPrompt := counter.CountMessages(msgs)
	const prefix = `{"model":"sim-model","stream":true,"max_tokens":6,"n":2,` +
		`"messages":[{"role":"system","content":"Be brief."},{"role":"user","name":"ann","content":"Count to ten."}],`

	t.Run("include_usage", func(t *testing.T) {
		t.Parallel()
		body := prefix + `"stream_options":{"include_usage":true}}`
		s := parseStream(t, stream(t, ts, "/v1/chat/completions", body), "chat.completion.chunk", "sim-model")
		if s.usageAt != len(s.chunks)-1 {
			t.Fatalf("%s: usage-only chunk at %d, want last of %d chunks", body, s.usageAt, len(s.chunks))
		}
		var text string
		for i := range 2 {
			text += s.texts[i]
		}
		u := s.usage
		if u.PromptTokens != wantPrompt || u.CompletionTokens == nil || *u.CompletionTokens != 12 ||
			u.TotalTokens != wantPrompt+12 {
			t.Errorf("%s: usage = %+v, want prompt %d, completion 12, total %d", body, *u, wantPrompt, wantPrompt+12)
		}
		if got := counter.Count(text); u.CompletionTokens != nil && got != *u.CompletionTokens {
			t.Errorf("Count(streamed text %q) = %d, want completion_tokens %d", text, got, *u.CompletionTokens)
		}
	})
	t.Run("continuous_usage_stats", func(t *testing.T) {
		t.Parallel()
		body := prefix + `"stream_options":{"continuous_usage_stats":true}}`
		s := parseStream(t, stream(t, ts, "/v1/chat/completions", body), "chat.completion.chunk", "sim-model")
		prev := 0
		for i, c := range s.chunks {
			if c.Usage == nil || c.Usage.CompletionTokens == nil {
				t.Fatalf("%s: chunk %d has no usage", body, i)
			}
			got := *c.Usage.CompletionTokens
			step := 0
			if c.Choices[0].Delta.Content != nil && *c.Choices[0].Delta.Content != "" {
				step = 1
			}
			if got != prev+step || c.Usage.PromptTokens != wantPrompt || c.Usage.TotalTokens != wantPrompt+got {
				t.Errorf("%s: chunk %d usage = %+v (completion %d), want completion %d after %d", body, i, *c.Usage, got, prev+step, prev)
			}
			prev = got
		}
		if prev != 12 {
			t.Errorf("%s: final running completion_tokens = %d, want 12", body, prev)
		}
	})
}

func TestChatNonStream(t *testing.T) {
	t.Parallel()
	_, ts := startServer(t, func(c *Config) { c.Models = []string{"m1", "m2"} })
	counter := newCounter(t)
	tests := []struct {
		name       string
		body       string
		model      string
		n, length  int
		finish     string
		wantPrompt int
	}{
		{name: "string content", model: "m2", n: 1, length: 4, finish: "length",
			body:       `{"model":"m2","max_tokens":4,"messages":[{"role":"user","content":"Hi there"}]}`,
			wantPrompt: counter.CountMessages([]tokenizer.Message{{Role: "user", Content: "Hi there"}})},
		{name: "content parts and null", model: "m1", n: 2, length: 8, finish: "stop",
			body: `{"model":"m1","n":2,"messages":[{"role":"user","content":[{"type":"text","text":"Look"},` +
				`{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"here"}]},{"role":"assistant","content":null}]}`,
			wantPrompt: counter.CountMessages([]tokenizer.Message{{Role: "user", Content: "Look\nhere"}, {Role: "assistant"}})},
		{name: "default model", model: "m1", n: 1, length: 2, finish: "length",
			body:       `{"max_completion_tokens":2,"messages":[{"role":"user","content":"x"}]}`,
			wantPrompt: counter.CountMessages([]tokenizer.Message{{Role: "user", Content: "x"}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := decodeJSON[wireCompletion](t, post(t, ts, "/v1/chat/completions", tt.body, http.StatusOK))
			if resp.Object != "chat.completion" || resp.Model != tt.model || resp.ID == "" {
				t.Errorf("%s: object %q model %q id %q, want chat.completion, %q, an id", tt.body, resp.Object, resp.Model, resp.ID, tt.model)
			}
			if len(resp.Choices) != tt.n {
				t.Fatalf("%s: %d choices, want %d", tt.body, len(resp.Choices), tt.n)
			}
			all := ""
			for i, c := range resp.Choices {
				if c.Index != i || c.Message == nil || c.Message.Role != "assistant" || c.FinishReason != tt.finish {
					t.Errorf("%s: choice %d = %+v, want index %d, an assistant message, finish %q", tt.body, i, c, i, tt.finish)
					continue
				}
				if got := counter.Count(c.Message.Content); got != tt.length {
					t.Errorf("%s: Count(%q) = %d, want %d", tt.body, c.Message.Content, got, tt.length)
				}
				all += c.Message.Content
			}
			u := resp.Usage
			want := wireUsage{PromptTokens: tt.wantPrompt, TotalTokens: tt.wantPrompt + tt.n*tt.length}
			if u == nil || u.CompletionTokens == nil || *u.CompletionTokens != tt.n*tt.length ||
				u.PromptTokens != want.PromptTokens || u.TotalTokens != want.TotalTokens {
				t.Errorf("%s: usage = %+v, want %+v with completion %d", tt.body, u, want, tt.n*tt.length)
			}
			if got := counter.Count(all); got != tt.n*tt.length {
				t.Errorf("%s: Count(all choices) = %d, want %d", tt.body, got, tt.n*tt.length)
			}
		})
	}
}

func TestDeterministicText(t *testing.T) {
	t.Parallel()
	_, ts := startServer(t, func(c *Config) { c.Models = []string{"a", "b"} })
	text := func(model, prompt string, streaming bool) []string {
		body := fmt.Sprintf(`{"model":%q,"n":2,"max_tokens":6,"stream":%t,"messages":[{"role":"user","content":%q}]}`, model, streaming, prompt)
		if !streaming {
			resp := decodeJSON[wireCompletion](t, post(t, ts, "/v1/chat/completions", body, http.StatusOK))
			return []string{resp.Choices[0].Message.Content, resp.Choices[1].Message.Content}
		}
		s := parseStream(t, stream(t, ts, "/v1/chat/completions", body), "chat.completion.chunk", model)
		return []string{s.texts[0], s.texts[1]}
	}
	first := text("a", "same prompt", false)
	if again := text("a", "same prompt", false); fmt.Sprint(again) != fmt.Sprint(first) {
		t.Errorf("same request twice: %q then %q", first, again)
	}
	if streamed := text("a", "same prompt", true); fmt.Sprint(streamed) != fmt.Sprint(first) {
		t.Errorf("streamed %q, non-streamed %q; want equal", streamed, first)
	}
	if first[0] == first[1] {
		t.Errorf("choices 0 and 1 both %q; want different texts", first[0])
	}
	if other := text("a", "other prompt", false); other[0] == first[0] {
		t.Errorf("different prompts gave the same text %q", other[0])
	}
	if other := text("b", "same prompt", false); other[0] == first[0] {
		t.Errorf("different models gave the same text %q", other[0])
	}
}

func TestCompletions(t *testing.T) {
	t.Parallel()
	_, ts := startServer(t, nil)
	counter := newCounter(t)
	tests := []struct {
		name       string
		prompt     string
		n, length  int
		wantChoice int
		wantPrompt int
	}{
		{name: "string", prompt: `"Once upon a time"`, n: 1, length: 5, wantChoice: 1,
			wantPrompt: counter.Count("Once upon a time")},
		{name: "two prompts n=2", prompt: `["alpha beta","gamma"]`, n: 2, length: 3, wantChoice: 4,
			wantPrompt: counter.Count("alpha beta") + counter.Count("gamma")},
		{name: "token ids", prompt: `[1,2,3,4,5,6,7]`, n: 1, length: 2, wantChoice: 1, wantPrompt: 7},
		{name: "token id lists", prompt: `[[1,2],[3]]`, n: 1, length: 2, wantChoice: 2, wantPrompt: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := fmt.Sprintf(`{"model":"sim-model","prompt":%s,"n":%d,"max_tokens":%d`, tt.prompt, tt.n, tt.length)
			wantCompletion := tt.wantChoice * tt.length

			body := base + "}"
			resp := decodeJSON[wireCompletion](t, post(t, ts, "/v1/completions", body, http.StatusOK))
			if resp.Object != "text_completion" || resp.Model != "sim-model" || len(resp.Choices) != tt.wantChoice {
				t.Fatalf("%s: object %q model %q with %d choices, want text_completion, sim-model, %d",
					body, resp.Object, resp.Model, len(resp.Choices), tt.wantChoice)
			}
			texts := map[int]string{}
			for i, c := range resp.Choices {
				if c.Index != i || c.Text == nil || c.FinishReason != "length" || counter.Count(*c.Text) != tt.length {
					t.Errorf("%s: choice %d = %+v, want index %d, %d tokens of text, finish length", body, i, c, i, tt.length)
					continue
				}
				texts[i] = *c.Text
			}
			u := resp.Usage
			if u == nil || u.PromptTokens != tt.wantPrompt || u.CompletionTokens == nil || *u.CompletionTokens != wantCompletion {
				t.Errorf("%s: usage = %+v, want prompt %d, completion %d", body, u, tt.wantPrompt, wantCompletion)
			}

			body = base + `,"stream":true,"stream_options":{"include_usage":true}}`
			s := parseStream(t, stream(t, ts, "/v1/completions", body), "text_completion", "sim-model")
			for i := range tt.wantChoice {
				if s.texts[i] != texts[i] || s.finish[i] != "length" || s.tokens[i] != tt.length {
					t.Errorf("%s: choice %d streamed %q in %d chunks, finish %q; want %q, %d chunks, length",
						body, i, s.texts[i], s.tokens[i], s.finish[i], texts[i], tt.length)
				}
			}
			if s.usage == nil || s.usage.PromptTokens != tt.wantPrompt || *s.usage.CompletionTokens != wantCompletion {
				t.Errorf("%s: streamed usage = %+v, want prompt %d, completion %d", body, s.usage, tt.wantPrompt, wantCompletion)
			}
		})
	}
}

func TestRequestErrors(t *testing.T) {
	t.Parallel()
	_, ts := startServer(t, func(c *Config) { c.KVTokens = 100 })
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	tests := []struct {
		name, path, body string
		headers          []string
		want             int
	}{
		{name: "chat unknown model", path: "/v1/chat/completions", body: `{"model":"nope",` + msgs + `}`, want: 404},
		{name: "completions unknown model", path: "/v1/completions", body: `{"model":"nope","prompt":"x"}`, want: 404},
		{name: "embeddings unknown model", path: "/v1/embeddings", body: `{"model":"nope","input":"x"}`, want: 404},
		{name: "chat bad JSON", path: "/v1/chat/completions", body: `{"model":`, want: 400},
		{name: "completions bad JSON", path: "/v1/completions", body: `not json`, want: 400},
		{name: "embeddings bad JSON", path: "/v1/embeddings", body: `{"input":7}`, want: 400},
		{name: "stream not bool", path: "/v1/chat/completions", body: `{"stream":"yes",` + msgs + `}`, want: 400},
		{name: "content not text", path: "/v1/chat/completions", body: `{"messages":[{"role":"user","content":5}]}`, want: 400},
		{name: "no messages", path: "/v1/chat/completions", body: `{"messages":[]}`, want: 400},
		{name: "no prompt", path: "/v1/completions", body: `{"prompt":[]}`, want: 400},
		{name: "max_tokens 0", path: "/v1/chat/completions", body: `{"max_tokens":0,` + msgs + `}`, want: 400},
		{name: "n 0", path: "/v1/completions", body: `{"n":0,"prompt":"x"}`, want: 400},
		{name: "too long", path: "/v1/chat/completions", body: `{"max_tokens":99,` + msgs + `}`, want: 400},
		{name: "bad dimensions", path: "/v1/embeddings", body: `{"input":"x","dimensions":0}`, want: 400},
		{name: "bad encoding_format", path: "/v1/embeddings", body: `{"input":"x","encoding_format":"hex"}`, want: 400},
		{name: "bad X-Sim-Fail", path: "/v1/chat/completions", body: `{` + msgs + `}`, headers: []string{"X-Sim-Fail", "boom"}, want: 400},
		{name: "bad X-Sim-TTFT", path: "/v1/completions", body: `{"prompt":"x"}`, headers: []string{"X-Sim-TTFT", "soon"}, want: 400},
		{name: "bad X-Sim-Usage", path: "/v1/embeddings", body: `{"input":"x"}`, headers: []string{"X-Sim-Usage", "all"}, want: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, hdr, b := call(t, ts, http.MethodPost, tt.path, tt.body, tt.headers...)
			if code != tt.want {
				t.Fatalf("POST %s %s status = %d, want %d; body %s", tt.path, tt.body, code, tt.want, b)
			}
			e := decodeJSON[wireError](t, b)
			if hdr.Get("Content-Type") != "application/json" || e.Error == nil || e.Error.Message == "" ||
				e.Error.Type == "" || e.Error.Code != tt.want {
				t.Errorf("POST %s %s body = %s, want an OpenAI error with code %d", tt.path, tt.body, b, tt.want)
			}
		})
	}
}

func TestAPIKey(t *testing.T) {
	t.Parallel()
	_, ts := startServer(t, func(c *Config) { c.APIKey = "s3cret" })
	tests := []struct {
		name, method, path, body string
		headers                  []string
		want                     int
	}{
		{name: "no key", method: "POST", path: "/v1/chat/completions", want: 401,
			body: `{"messages":[{"role":"user","content":"hi"}]}`},
		{name: "wrong key", method: "POST", path: "/v1/chat/completions", want: 401,
			body: `{"messages":[{"role":"user","content":"hi"}]}`, headers: []string{"Authorization", "Bearer nope"}},
		{name: "not bearer", method: "POST", path: "/v1/embeddings", want: 401,
			body: `{"input":"hi"}`, headers: []string{"Authorization", "s3cret"}},
		{name: "models without key", method: "GET", path: "/v1/models", want: 401},
		{name: "right key", method: "POST", path: "/v1/chat/completions", want: 200,
			body: `{"messages":[{"role":"user","content":"hi"}]}`, headers: []string{"Authorization", "Bearer s3cret"}},
		{name: "models with key", method: "GET", path: "/v1/models", want: 200, headers: []string{"Authorization", "Bearer s3cret"}},
		{name: "health needs none", method: "GET", path: "/health", want: 200},
		{name: "metrics needs none", method: "GET", path: "/metrics", want: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, _, b := call(t, ts, tt.method, tt.path, tt.body, tt.headers...)
			if code != tt.want {
				t.Errorf("%s %s (headers %q) status = %d, want %d; body %s", tt.method, tt.path, tt.headers, code, tt.want, b)
			}
			if tt.want == http.StatusUnauthorized {
				if e := decodeJSON[wireError](t, b); e.Error == nil || e.Error.Code != 401 {
					t.Errorf("%s %s body = %s, want an OpenAI error with code 401", tt.method, tt.path, b)
				}
			}
		})
	}
}
