package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// promptTokens asks the shared llmsim directly how many prompt tokens a chat body counts.
func promptTokens(t *testing.T, hc *http.Client, body string) int {
	t.Helper()
	resp, b := do(t, hc, http.MethodPost, suite.sim.url+"/v1/chat/completions", body, nil)
	var r struct{ Usage usage }
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &r) != nil || r.Usage.PromptTokens == 0 {
		t.Fatalf("llmsim chat %s = %d, want 200 with usage:\n%s", body, resp.StatusCode, b)
	}
	return r.Usage.PromptTokens
}

// TestMetrics makes a known set of requests and checks that /metrics on the admin listener
// counts them: requests by outcome, tokens by source, TTFT, the gauges. /metrics is not on the
// public listener.
func TestMetrics(t *testing.T) {
	t.Parallel()
	gw := startSharedGateway(t, "")
	hc := newHTTPClient(t)
	chat := func(content string, maxTokens int, stream bool) string {
		return fmt.Sprintf(`{"model":"sim-model","messages":[{"role":"user","content":%q}],"max_tokens":%d,"stream":%v}`,
			content, maxTokens, stream)
	}
	reqs := []struct {
		route, body string
		hdr         http.Header
		wantStatus  int
	}{
		{"/v1/chat/completions", chat("upstream counted", 5, false), nil, 200},
		{"/v1/chat/completions", chat("upstream counted, streamed", 6, true), nil, 200},
		{"/v1/chat/completions", chat("estimated, please", 4, false), headers("X-Sim-Usage", "omit"), 200},
		{"/v1/chat/completions", chat("estimated and streamed", 3, true), headers("X-Sim-Usage", "omit"), 200},
		{"/v1/embeddings", `{"model":"sim-model","input":"embed these words"}`, nil, 200},
		{"/v1/chat/completions", `{"model":"unknown-model","messages":[]}`, nil, 404},
		{"/v1/chat/completions", chat("fail", 2, false), headers("X-Sim-Fail", "500"), 500},
	}
	for _, r := range reqs {
		resp, b := do(t, hc, http.MethodPost, gw.url+r.route, r.body, r.hdr)
		if resp.StatusCode != r.wantStatus {
			t.Fatalf("POST %s %s = %d, want %d:\n%s", r.route, r.body, resp.StatusCode, r.wantStatus, b)
		}
	}
	// What llmsim counts for the same prompts; the gateway's estimates use the same tokenizer.
	upstreamIn := promptTokens(t, hc, chat("upstream counted", 1, false)) +
		promptTokens(t, hc, chat("upstream counted, streamed", 1, false))
	estimatedIn := promptTokens(t, hc, chat("estimated, please", 1, false)) +
		promptTokens(t, hc, chat("estimated and streamed", 1, false))
	_, eb := do(t, hc, http.MethodPost, suite.sim.url+"/v1/embeddings", `{"model":"sim-model","input":"embed these words"}`, nil)
	var emb struct{ Usage usage }
	if err := json.Unmarshal(eb, &emb); err != nil || emb.Usage.PromptTokens == 0 {
		t.Fatalf("llmsim embeddings: %v\n%s", err, eb)
	}

	const chatRoute = "/v1/chat/completions"
	okChats := map[string]string{"route": chatRoute, "model": simModel, "code": "200", "outcome": "ok"}
	fams := scrape(t, gw.admin+"/metrics")
	if !poll(settleTimeout, func() bool {
		fams = scrape(t, gw.admin+"/metrics")
		n, _ := metricValue(fams, "llmgate_requests_total", okChats)
		return n == 4
	}) {
		n, _ := metricValue(fams, "llmgate_requests_total", okChats)
		t.Fatalf("llmgate_requests_total%v = %v, want 4", okChats, n)
	}
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"llmgate_requests_total", map[string]string{"route": "/v1/embeddings", "model": simModel, "code": "200", "outcome": "ok"}, 1},
		{"llmgate_requests_total", map[string]string{"route": chatRoute, "model": "other", "code": "404", "outcome": "invalid"}, 1},
		{"llmgate_requests_total", map[string]string{"route": chatRoute, "model": simModel, "code": "500", "outcome": "upstream_error"}, 1},
		{"llmgate_requests_total", map[string]string{}, 7},
		{"llmgate_tokens_total", map[string]string{"model": simModel, "type": "output", "source": "upstream"}, 5 + 6},
		{"llmgate_tokens_total", map[string]string{"model": simModel, "type": "input", "source": "upstream"}, float64(upstreamIn + emb.Usage.PromptTokens)},
		{"llmgate_tokens_total", map[string]string{"model": simModel, "type": "output", "source": "estimated"}, 4 + 3},
		{"llmgate_tokens_total", map[string]string{"model": simModel, "type": "input", "source": "estimated"}, float64(estimatedIn)},
		{"llmgate_time_to_first_token_seconds", map[string]string{"model": simModel, "backend": "sim"}, 2},
		{"llmgate_upstream_time_to_first_token_seconds", map[string]string{"model": simModel, "backend": "sim"}, 2},
		{"llmgate_request_duration_seconds", map[string]string{"route": chatRoute, "model": simModel}, 5},
		{"llmgate_active_requests", map[string]string{}, 0},
		{"llmgate_backend_up", map[string]string{"backend": "sim"}, 1},
		{"llmgate_backend_inflight", map[string]string{"backend": "sim"}, 0},
		{"llmgate_build_info", map[string]string{}, 1},
	}
	for _, tc := range tests {
		got, found := metricValue(fams, tc.name, tc.labels)
		if !found || got != tc.want {
			t.Errorf("%s%v = %v (found %v), want %v", tc.name, tc.labels, got, found, tc.want)
		}
	}
	if f := fams["llmgate_build_info"]; f != nil && len(f.GetMetric()) == 1 {
		labels := map[string]string{}
		for _, lp := range f.GetMetric()[0].GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		if labels["version"] == "" || !strings.HasPrefix(labels["goversion"], "go") {
			t.Errorf("llmgate_build_info labels = %v, want a version and goversion", labels)
		}
	}

	resp, b := do(t, hc, http.MethodGet, gw.url+"/metrics", "", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics on the public listener = %d, want 404:\n%.200s", resp.StatusCode, b)
	}
}

// TestAccessLog checks llmgate's access log: exactly one "request" line per proxied request,
// carrying the request's ID and what happened, and never the prompt, the completion or a key.
func TestAccessLog(t *testing.T) {
	t.Parallel()
	gw := startSharedGateway(t, "")
	hc := newHTTPClient(t)
	const canary = "canary-prompt-4e8d1b"
	chat := `{"model":"sim-model","messages":[{"role":"user","content":"` + canary + ` chat"}],"max_tokens":5`
	tests := []struct {
		route, body string
		hdr         http.Header
		status      int
		outcome     string
		stream      bool
		tokenSource string // "" when no tokens are counted
	}{
		{"/v1/chat/completions", chat + `}`, nil, 200, "ok", false, "upstream"},
		{"/v1/chat/completions", chat + `,"stream":true}`, nil, 200, "ok", true, "upstream"},
		{"/v1/chat/completions", chat + `,"stream":true}`, headers("X-Sim-Usage", "omit"), 200, "ok", true, "estimated"},
		{"/v1/completions", `{"model":"sim-small","prompt":"` + canary + ` text","max_tokens":3}`, nil, 200, "ok", false, "upstream"},
		{"/v1/embeddings", `{"model":"sim-model","input":"` + canary + ` embed"}`, nil, 200, "ok", false, "upstream"},
		{"/v1/chat/completions", `{"model":"nope","messages":[{"role":"user","content":"` + canary + `"}]}`, nil, 404, "invalid", false, ""},
		{"/v1/chat/completions", `{"model":"sim-model","messages":[{"role":"user","content":"` + canary, nil, 400, "invalid", false, ""},
		{"/v1/chat/completions", chat + `}`, headers("X-Sim-Fail", "500"), 500, "upstream_error", false, ""},
	}
	var completions []string
	for _, tc := range tests {
		hdr := headers("X-Request-Id", newRequestID(t), "Authorization", "Bearer "+clientKey)
		for k, v := range tc.hdr {
			hdr[k] = v
		}
		resp, b := do(t, hc, http.MethodPost, gw.url+tc.route, tc.body, hdr)
		if resp.StatusCode != tc.status {
			t.Fatalf("POST %s %s = %d, want %d:\n%s", tc.route, tc.body, resp.StatusCode, tc.status, b)
		}
		id := hdr.Get("X-Request-Id")
		l := requestLog(t, gw, id)
		status, _ := l.num("status")
		if l.str("route") != tc.route || int(status) != tc.status || l.str("outcome") != tc.outcome ||
			l["stream"] != tc.stream || l.str("token_source") != tc.tokenSource {
			t.Errorf("access log of POST %s %s:\n%v\nwant route %s, status %d, outcome %s, stream %v, token_source %q",
				tc.route, tc.body, l, tc.route, tc.status, tc.outcome, tc.stream, tc.tokenSource)
		}
		if tc.status == 200 {
			if l.str("backend") != "sim" || l.str("served_model") == "" {
				t.Errorf("access log of POST %s: backend %q served_model %q, want sim and the model", tc.route, l.str("backend"), l.str("served_model"))
			}
			if _, ok := l.num("input_tokens"); !ok {
				t.Errorf("access log of POST %s has no input_tokens: %v", tc.route, l)
			}
			if _, ok := l.num("ttft"); ok != tc.stream {
				t.Errorf("access log of POST %s: ttft present = %v, want %v: %v", tc.route, ok, tc.stream, l)
			}
			if tc.route != "/v1/embeddings" && !tc.stream {
				completions = append(completions, completionText(b))
			}
		}
	}
	// Requests that are not proxied have no access-log line.
	for _, path := range []string{"/v1/models", "/healthz", "/readyz"} {
		do(t, hc, http.MethodGet, gw.url+path, "", headers("X-Request-Id", newRequestID(t)))
	}

	lines := requestLines(t, gw)
	if len(lines) != len(tests) {
		t.Errorf("llmgate logged %d request lines for %d proxied requests:\n%s", len(lines), len(tests), gw.logs())
	}
	seen := map[string]int{}
	for _, l := range lines {
		seen[l.str("request_id")]++
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("request_id %q has %d request lines, want 1", id, n)
		}
	}
	logs := gw.logs()
	for _, secret := range append([]string{canary, clientKey}, completions...) {
		if secret != "" && strings.Contains(logs, secret) {
			t.Errorf("llmgate's output contains %q, which it must never log:\n%s", secret, logs)
		}
	}
}

// completionText returns the generated text of a non-streaming chat or text completion.
func completionText(body []byte) string {
	var r struct {
		Choices []struct {
			Message struct{ Content string }
			Text    string
		}
	}
	if json.Unmarshal(body, &r) != nil || len(r.Choices) == 0 {
		return ""
	}
	return strings.TrimSpace(r.Choices[0].Message.Content + r.Choices[0].Text)
}
