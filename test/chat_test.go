package test

import (
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// clientKey is the key the tests' clients send to llmgate; it must never reach a backend or
// a log.
const clientKey = "client-secret"

// sdkClient returns an OpenAI SDK client for the server at base (llmgate or llmsim), sending
// clientKey and never retrying, so that every call is exactly one request.
func sdkClient(t *testing.T, base string, opts ...option.RequestOption) openai.Client {
	t.Helper()
	return openai.NewClient(append([]option.RequestOption{
		option.WithBaseURL(base + "/v1"),
		option.WithAPIKey(clientKey),
		option.WithHTTPClient(newHTTPClient(t)),
		option.WithMaxRetries(0),
	}, opts...)...)
}

// TestChatSDK drives chat completions through llmgate with the official SDK: the text and
// usage are what llmsim produces for the same request, streamed or not.
func TestChatSDK(t *testing.T) {
	t.Parallel()
	gw := startSharedGateway(t, "")
	tests := []struct {
		name, model, prompt string
		maxTokens           int64
	}{
		{"short", simModel, "Hello there, gateway.", 5},
		{"long", simSmall, "Tell me a long story about a reverse proxy that streams tokens.", 40},
		{"unicode", simModel, "Grüße aus Köln — 日本語も少し 🙂", 12},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gwc, simc := sdkClient(t, gw.url), sdkClient(t, suite.sim.url)
			params := openai.ChatCompletionNewParams{
				Model:     tc.model,
				Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage(tc.prompt)},
				MaxTokens: openai.Int(tc.maxTokens),
			}
			direct, err := simc.Chat.Completions.New(reqCtx(t), params)
			if err != nil {
				t.Fatalf("llmsim chat(%q): %v", tc.prompt, err)
			}
			got, err := gwc.Chat.Completions.New(reqCtx(t), params)
			if err != nil {
				t.Fatalf("llmgate chat(%q): %v", tc.prompt, err)
			}
			want := direct.Choices[0].Message.Content
			if len(got.Choices) != 1 || got.Choices[0].Message.Content != want {
				t.Fatalf("chat(%q) via llmgate = %+v, want content %q as llmsim answers", tc.prompt, got.Choices, want)
			}
			if n := len(strings.Fields(want)); int64(n) != tc.maxTokens {
				t.Errorf("chat(%q) content %q has %d words, want max_tokens %d", tc.prompt, want, n, tc.maxTokens)
			}
			if got.Choices[0].FinishReason != "length" || got.Model != tc.model {
				t.Errorf("chat(%q) finish_reason, model = %q, %q, want length, %s", tc.prompt,
					got.Choices[0].FinishReason, got.Model, tc.model)
			}
			wantUsage := [3]int64{direct.Usage.PromptTokens, tc.maxTokens, direct.Usage.PromptTokens + tc.maxTokens}
			if u := got.Usage; [3]int64{u.PromptTokens, u.CompletionTokens, u.TotalTokens} != wantUsage || u.PromptTokens == 0 {
				t.Errorf("chat(%q) usage = %d/%d/%d, want prompt/completion/total %v", tc.prompt,
					u.PromptTokens, u.CompletionTokens, u.TotalTokens, wantUsage)
			}

			for _, viaGateway := range []bool{true, false} {
				c := simc
				if viaGateway {
					c = gwc
				}
				acc := streamChat(t, c, params)
				if acc.Choices[0].Message.Content != want {
					t.Errorf("streamed chat(%q) (via llmgate: %v) = %q, want %q", tc.prompt, viaGateway,
						acc.Choices[0].Message.Content, want)
				}
				if acc.Usage.TotalTokens != 0 { // the accumulator sums the usage of every chunk
					t.Errorf("streamed chat(%q) (via llmgate: %v) without include_usage got usage %+v, want none",
						tc.prompt, viaGateway, acc.Usage)
				}
			}

			params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			acc := streamChat(t, gwc, params)
			if acc.Choices[0].Message.Content != want {
				t.Errorf("streamed chat(%q) with usage = %q, want %q", tc.prompt, acc.Choices[0].Message.Content, want)
			}
			if u := acc.Usage; [3]int64{u.PromptTokens, u.CompletionTokens, u.TotalTokens} != wantUsage {
				t.Errorf("streamed chat(%q) usage = %d/%d/%d, want prompt/completion/total %v", tc.prompt,
					u.PromptTokens, u.CompletionTokens, u.TotalTokens, wantUsage)
			}
		})
	}
}

// streamChat streams a chat completion with c and returns the accumulated answer.
func streamChat(t *testing.T, c openai.Client, params openai.ChatCompletionNewParams) openai.ChatCompletionAccumulator {
	t.Helper()
	stream := c.Chat.Completions.NewStreaming(reqCtx(t), params)
	defer stream.Close()
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream chat: %v", err)
	}
	if len(acc.Choices) != 1 {
		t.Fatalf("stream chat: got %d choices, want 1", len(acc.Choices))
	}
	return acc
}

// TestCompletionsSDK drives legacy text completions through llmgate, streamed and not.
func TestCompletionsSDK(t *testing.T) {
	t.Parallel()
	gw := startSharedGateway(t, "")
	gwc, simc := sdkClient(t, gw.url), sdkClient(t, suite.sim.url)
	const prompt, maxTokens = "Once upon a time, a gateway", 9
	params := openai.CompletionNewParams{
		Model:     simSmall,
		Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String(prompt)},
		MaxTokens: openai.Int(maxTokens),
	}
	direct, err := simc.Completions.New(reqCtx(t), params)
	if err != nil {
		t.Fatalf("llmsim completion(%q): %v", prompt, err)
	}
	got, err := gwc.Completions.New(reqCtx(t), params)
	if err != nil {
		t.Fatalf("llmgate completion(%q): %v", prompt, err)
	}
	want := direct.Choices[0].Text
	if len(got.Choices) != 1 || got.Choices[0].Text != want || len(strings.Fields(want)) != maxTokens {
		t.Fatalf("completion(%q) via llmgate = %+v, want text %q (%d words) as llmsim answers", prompt, got.Choices, want, maxTokens)
	}
	wantUsage := [3]int64{direct.Usage.PromptTokens, maxTokens, direct.Usage.PromptTokens + maxTokens}
	if u := got.Usage; [3]int64{u.PromptTokens, u.CompletionTokens, u.TotalTokens} != wantUsage {
		t.Errorf("completion(%q) usage = %d/%d/%d, want %v", prompt, u.PromptTokens, u.CompletionTokens, u.TotalTokens, wantUsage)
	}

	for _, includeUsage := range []bool{false, true} {
		p := params
		if includeUsage {
			p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		}
		stream := gwc.Completions.NewStreaming(reqCtx(t), p)
		var text strings.Builder
		var usages []openai.CompletionUsage
		for stream.Next() {
			c := stream.Current()
			for _, ch := range c.Choices {
				text.WriteString(ch.Text)
			}
			if c.JSON.Usage.Valid() {
				usages = append(usages, c.Usage)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatalf("stream completion(%q, include_usage=%v): %v", prompt, includeUsage, err)
		}
		stream.Close()
		if text.String() != want {
			t.Errorf("streamed completion(%q, include_usage=%v) = %q, want %q", prompt, includeUsage, text.String(), want)
		}
		wantChunks := 0
		if includeUsage {
			wantChunks = 1
		}
		if len(usages) != wantChunks {
			t.Errorf("streamed completion(%q, include_usage=%v) got %d usage chunks %+v, want %d", prompt, includeUsage,
				len(usages), usages, wantChunks)
		} else if includeUsage {
			if u := usages[0]; [3]int64{u.PromptTokens, u.CompletionTokens, u.TotalTokens} != wantUsage {
				t.Errorf("streamed completion(%q) usage = %d/%d/%d, want %v", prompt, u.PromptTokens,
					u.CompletionTokens, u.TotalTokens, wantUsage)
			}
		}
	}
}

// TestEmbeddingsSDK checks that embeddings through llmgate are llmsim's, unit length.
func TestEmbeddingsSDK(t *testing.T) {
	t.Parallel()
	gw := startSharedGateway(t, "")
	tests := []struct {
		name   string
		params openai.EmbeddingNewParams
		inputs int
	}{
		{"string", openai.EmbeddingNewParams{Model: simModel,
			Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("the quick brown fox")}}, 1},
		{"strings", openai.EmbeddingNewParams{Model: simSmall,
			Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"first text", "second text"}}}, 2},
		{"base64 with dimensions", openai.EmbeddingNewParams{Model: simModel, Dimensions: openai.Int(64),
			EncodingFormat: openai.EmbeddingNewParamsEncodingFormatBase64,
			Input:          openai.EmbeddingNewParamsInputUnion{OfString: openai.String("encoded")}}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gwc, simc := sdkClient(t, gw.url), sdkClient(t, suite.sim.url)
			direct, err := simc.Embeddings.New(reqCtx(t), tc.params)
			if err != nil {
				t.Fatalf("llmsim embeddings: %v", err)
			}
			got, err := gwc.Embeddings.New(reqCtx(t), tc.params)
			if err != nil {
				t.Fatalf("llmgate embeddings: %v", err)
			}
			if len(got.Data) != tc.inputs || len(direct.Data) != tc.inputs {
				t.Fatalf("embeddings: got %d vectors via llmgate and %d from llmsim, want %d", len(got.Data), len(direct.Data), tc.inputs)
			}
			for i, d := range got.Data {
				if !slices.Equal(d.Embedding, direct.Data[i].Embedding) {
					t.Errorf("embedding %d via llmgate differs from llmsim's:\n got %v\nwant %v", i, d.Embedding, direct.Data[i].Embedding)
				}
				var sum float64
				for _, x := range d.Embedding {
					sum += x * x
				}
				if math.Abs(math.Sqrt(sum)-1) > 1e-4 || len(d.Embedding) == 0 {
					t.Errorf("embedding %d has length %d and norm %v, want a non-empty unit vector", i, len(d.Embedding), math.Sqrt(sum))
				}
			}
			if got.Usage.PromptTokens != direct.Usage.PromptTokens || got.Usage.PromptTokens == 0 {
				t.Errorf("embeddings usage.prompt_tokens = %d, want %d as llmsim answers", got.Usage.PromptTokens, direct.Usage.PromptTokens)
			}
		})
	}
}

// TestIncludeUsage checks what llmgate does with stream_options.include_usage: it asks
// upstream when the client did not, and then hides the usage-only chunk; a client that asks
// gets exactly one, with the right numbers.
func TestIncludeUsage(t *testing.T) {
	t.Parallel()
	gw := startSharedGateway(t, "")
	const maxTokens = 7
	messages := `[{"role":"user","content":"count my tokens please"}]`
	_, directBody := do(t, newHTTPClient(t), http.MethodPost, suite.sim.url+"/v1/chat/completions",
		`{"model":"`+simModel+`","messages":`+messages+`,"max_tokens":7}`, nil)
	var direct struct{ Usage usage }
	if err := json.Unmarshal(directBody, &direct); err != nil || direct.Usage.PromptTokens == 0 {
		t.Fatalf("llmsim chat: %v\n%s", err, directBody)
	}
	wantUsage := usage{direct.Usage.PromptTokens, maxTokens, direct.Usage.PromptTokens + maxTokens}

	tests := []struct {
		name, route, body string
		clientAsks        bool
	}{
		{"chat without stream_options", "/v1/chat/completions",
			`{"model":"sim-model","messages":` + messages + `,"max_tokens":7,"stream":true}`, false},
		{"chat with include_usage false", "/v1/chat/completions",
			`{"model":"sim-model","messages":` + messages + `,"max_tokens":7,"stream":true,"stream_options":{"include_usage":false}}`, false},
		{"chat with stream_options null", "/v1/chat/completions",
			`{"model":"sim-model","messages":` + messages + `,"max_tokens":7,"stream":true,"stream_options":null}`, false},
		{"chat asking for usage", "/v1/chat/completions",
			`{"model":"sim-model","messages":` + messages + `,"max_tokens":7,"stream":true,"stream_options":{"include_usage":true}}`, true},
		{"completions without stream_options", "/v1/completions",
			`{"model":"sim-model","prompt":"count my tokens please","max_tokens":7,"stream":true}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id := newRequestID(t)
			resp, raw := do(t, newHTTPClient(t), http.MethodPost, gw.url+tc.route, tc.body, headers("X-Request-Id", id))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("POST %s %s = %d, want 200:\n%s", tc.route, tc.body, resp.StatusCode, raw)
			}
			events, err := readAllEvents(strings.NewReader(string(raw)))
			if err != nil || len(events) == 0 || events[len(events)-1] != "[DONE]" {
				t.Fatalf("stream of %s: events %q, err %v; want a clean stream ending in [DONE]", tc.body, events, err)
			}
			text, usages := streamText(t, events)
			if n := len(strings.Fields(text)); n != maxTokens {
				t.Errorf("stream of %s: text %q has %d words, want %d", tc.body, text, n, maxTokens)
			}
			usageOnly := strings.Count(string(raw), `"choices":[]`)
			switch {
			case !tc.clientAsks && (usageOnly != 0 || len(usages) != 0):
				t.Errorf("stream of %s: client did not ask for usage but got %d usage-only chunks and usage %+v:\n%s",
					tc.body, usageOnly, usages, raw)
			case tc.clientAsks && (usageOnly != 1 || len(usages) != 1):
				t.Errorf("stream of %s: got %d usage-only chunks and %d usages, want exactly 1:\n%s", tc.body, usageOnly, len(usages), raw)
			case tc.clientAsks && usages[0] != wantUsage && tc.route == "/v1/chat/completions":
				t.Errorf("stream of %s: usage %+v, want %+v", tc.body, usages[0], wantUsage)
			}

			up := simRequest(t, suite.sim, id)
			var sent struct {
				StreamOptions *struct {
					IncludeUsage *bool `json:"include_usage"`
				} `json:"stream_options"`
			}
			if err := json.Unmarshal([]byte(up.Body), &sent); err != nil {
				t.Fatalf("upstream body is not JSON: %v\n%s", err, up.Body)
			}
			if sent.StreamOptions == nil || sent.StreamOptions.IncludeUsage == nil || !*sent.StreamOptions.IncludeUsage {
				t.Errorf("client body %s reached llmsim as %s, want stream_options.include_usage=true", tc.body, up.Body)
			}
			if tc.clientAsks && up.Body != tc.body {
				t.Errorf("client body %s reached llmsim changed as %s, want it unchanged", tc.body, up.Body)
			}
		})
	}
}
