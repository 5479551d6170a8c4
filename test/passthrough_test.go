package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// vendorBody is a chat request with fields llmgate does not read (tools, response_format,
// logprobs, vLLM's guided_json and chat_template_kwargs, an unknown vendor key), odd
// whitespace, escapes and number spellings. %s is where a test may add fields.
const vendorBody = "{ \"model\" :\t\"sim-model\" ,\n" +
	`  "messages":[ {"role":"system","content":"Tu es \u00e9l\u00e8ve \ud83d\ude00 \u2028 ok"},` + "\r\n" +
	`   {"role" : "user", "content":"caf\u00e9 \"quoted\" \\ back\/slash \t tab"} ],` + "\n" +
	"\t\"max_tokens\":   4 ,\n" +
	`  "tools":[{"type":"function","function":{"name":"get_weather","description":"Weather \u2600",` +
	`"parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],` + "\n" +
	`  "tool_choice" : "auto", "response_format": {"type":"json_object"},` + "\n" +
	`  "logprobs": true, "top_logprobs": 2, "temperature": 0.70, "seed": 1e3,` + "\n" +
	`  "guided_json": {"type":"object","properties":{"a":{"type":"integer"}}},` + "\n" +
	`  "chat_template_kwargs": {"enable_thinking": false}, "x_vendor_unknown": [1, 2.50, null, {"nested": "\u0000"}]%s` + "\n" +
	"}\n"

// TestBodyPassthrough checks that llmgate forwards a request body byte for byte: unchanged
// when it has nothing to patch, and for a stream changed only by the added include_usage.
func TestBodyPassthrough(t *testing.T) {
	t.Parallel()
	gw := startSharedGateway(t, "")
	tests := []struct {
		name   string
		extra  string
		stream bool
	}{
		{"non-streaming", "", false},
		{"streaming", `, "stream" : true`, true},
		{"streaming with other stream_options", `, "stream":true, "stream_options" : { "continuous_usage_stats" : false }`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := strings.Replace(vendorBody, "%s", tc.extra, 1)
			if !json.Valid([]byte(body)) {
				t.Fatalf("test body is not valid JSON:\n%s", body)
			}
			id := newRequestID(t)
			resp, got := do(t, newHTTPClient(t), http.MethodPost, gw.url+"/v1/chat/completions", body,
				headers("X-Request-Id", id, "Authorization", "Bearer "+clientKey))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("POST %s = %d, want 200:\n%s", body, resp.StatusCode, got)
			}
			up := simRequest(t, suite.sim, id)
			if !tc.stream {
				if up.Body != body {
					t.Errorf("llmsim received\n%q\nwant the client's body byte for byte\n%q", up.Body, body)
				}
				return
			}
			if !onlyIncludeUsageAdded(body, up.Body) {
				t.Errorf("llmsim received\n%q\nwant the client's body with only stream_options.include_usage added\n%q", up.Body, body)
			}
		})
	}
}

// addedUsage matches what llmgate may insert into a streaming body: a stream_options member
// holding include_usage, or an include_usage member inside the client's stream_options.
var addedUsage = regexp.MustCompile(`^\s*,?\s*("stream_options"\s*:\s*\{\s*"include_usage"\s*:\s*true\s*\}|"include_usage"\s*:\s*true)\s*,?\s*$`)

// onlyIncludeUsageAdded reports whether got is sent with one contiguous insertion that adds
// include_usage, and is valid JSON with stream_options.include_usage true.
func onlyIncludeUsageAdded(sent, got string) bool {
	var parsed struct {
		StreamOptions struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	if json.Unmarshal([]byte(got), &parsed) != nil || !parsed.StreamOptions.IncludeUsage {
		return false
	}
	n := len(got) - len(sent)
	if n <= 0 {
		return false
	}
	for i := 0; i <= len(sent); i++ {
		if got[:i] == sent[:i] && got[i+n:] == sent[i:] && addedUsage.MatchString(got[i:i+n]) {
			return true
		}
	}
	return false
}

// TestResponseHeaders checks the headers llmgate adds to proxied answers and the ttft
// trailer of streams.
func TestResponseHeaders(t *testing.T) {
	t.Parallel()
	gw := startSharedGateway(t, "")
	timing := regexp.MustCompile(`^gateway;dur=[0-9.]+, upstream;dur=[0-9.]+$`)
	ttft := regexp.MustCompile(`^ttft;dur=[0-9.]+$`)
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			t.Parallel()
			id := newRequestID(t)
			body := fmt.Sprintf(`{"model":"sim-model","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stream":%v}`, stream)
			resp, raw := do(t, newHTTPClient(t), http.MethodPost, gw.url+"/v1/chat/completions", body, headers("X-Request-Id", id))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("POST %s = %d, want 200:\n%s", body, resp.StatusCode, raw)
			}
			if got := resp.Header.Get("X-Request-Id"); got != id {
				t.Errorf("POST %s: X-Request-Id = %q, want the client's %q", body, got, id)
			}
			if got := resp.Header.Get("X-LLMGate-Backend"); got != "sim" {
				t.Errorf("POST %s: X-LLMGate-Backend = %q, want sim", body, got)
			}
			if got := resp.Header.Get("Server-Timing"); !timing.MatchString(got) {
				t.Errorf("POST %s: Server-Timing = %q, want %s", body, got, timing)
			}
			if !stream {
				return
			}
			if got := resp.Trailer.Get("Server-Timing"); !ttft.MatchString(got) {
				t.Errorf("POST %s: Server-Timing trailer = %q (trailers %v), want %s", body, got, resp.Trailer, ttft)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
				t.Errorf("POST %s: Content-Type = %q, want text/event-stream", body, ct)
			}
		})
	}
	t.Run("new request ID", func(t *testing.T) {
		t.Parallel()
		// Without a client ID, llmgate makes one, returns it and sends it upstream.
		body := `{"model":"sim-model","messages":[{"role":"user","content":"hi"}],"max_tokens":1}`
		resp, raw := do(t, newHTTPClient(t), http.MethodPost, gw.url+"/v1/chat/completions", body, nil)
		id := resp.Header.Get("X-Request-Id")
		if resp.StatusCode != http.StatusOK || id == "" {
			t.Fatalf("POST %s without X-Request-Id = %d with X-Request-Id %q, want 200 and a new ID:\n%s", body, resp.StatusCode, id, raw)
		}
		simRequest(t, suite.sim, id) // fails unless llmsim saw the same ID
	})
}
