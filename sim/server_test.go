package sim

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/llmgate/llmgate/tokenizer"
)

func TestRecordedRequests(t *testing.T) {
	t.Parallel()
	_, ts := startServer(t, nil)
	const chatBody = "{\"messages\": [{\"role\":\"user\",\"content\":\"h\u00e9\"}],\n  \"max_tokens\":1}"
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+"/v1/chat/completions", strings.NewReader(chatBody))
	if err != nil {
		t.Fatalf("NewRequest: %v", err)
	}
	req.Header.Add("X-Custom", "a")
	req.Header.Add("X-Custom", "b")
	req.Header.Set("Authorization", "Bearer client-key")
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", chatBody, err)
	}
	resp.Body.Close()
	post(t, ts, "/v1/embeddings", "not json", http.StatusBadRequest, "X-Sim-Fail", "500")
	call(t, ts, http.MethodGet, "/health", "") // Not a /v1 request: not recorded.

	code, _, b := call(t, ts, http.MethodGet, "/sim/requests", "")
	if code != http.StatusOK {
		t.Fatalf("GET /sim/requests status = %d, want 200", code)
	}
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil || len(raw) != 2 {
		t.Fatalf("GET /sim/requests = %s (%v), want 2 records", b, err)
	}
	if keys := slices.Sorted(maps.Keys(raw[0])); fmt.Sprint(keys) != "[body headers method path]" {
		t.Errorf("record keys = %v, want [body headers method path]", keys)
	}
	recs := decodeJSON[[]RecordedRequest](t, b)
	first, second := recs[0], recs[1]
	if first.Method != "POST" || first.Path != "/v1/chat/completions" || first.Body != chatBody {
		t.Errorf("first record = %s %s %q, want POST /v1/chat/completions %q", first.Method, first.Path, first.Body, chatBody)
	}
	for name, want := range map[string][]string{"X-Custom": {"a", "b"}, "Authorization": {"Bearer client-key"},
		"Content-Length": {fmt.Sprint(len(chatBody))}} {
		if got := first.Headers[name]; !slices.Equal(got, want) {
			t.Errorf("first record header %s = %q, want %q", name, got, want)
		}
	}
	if second.Path != "/v1/embeddings" || second.Body != "not json" || second.Headers.Get("X-Sim-Fail") != "500" {
		t.Errorf("second record = %+v, want POST /v1/embeddings with body %q and X-Sim-Fail: 500", second, "not json")
	}

	if code, _, b := call(t, ts, http.MethodDelete, "/sim/requests", ""); code != http.StatusNoContent {
		t.Errorf("DELETE /sim/requests status = %d, want 204; body %s", code, b)
	}
	if _, _, b := call(t, ts, http.MethodGet, "/sim/requests", ""); string(b) != "[]" {
		t.Errorf("GET /sim/requests after DELETE = %s, want []", b)
	}

	for i := range recordLimit + 5 {
		call(t, ts, http.MethodGet, "/v1/models", "", "X-N", fmt.Sprint(i))
	}
	_, _, b = call(t, ts, http.MethodGet, "/sim/requests", "")
	recs = decodeJSON[[]RecordedRequest](t, b)
	if len(recs) != recordLimit || recs[0].Headers.Get("X-N") != "5" || recs[len(recs)-1].Headers.Get("X-N") != fmt.Sprint(recordLimit+4) {
		t.Errorf("after %d requests: %d records from X-N %s to %s, want %d from 5 to %d", recordLimit+5, len(recs),
			recs[0].Headers.Get("X-N"), recs[len(recs)-1].Headers.Get("X-N"), recordLimit, recordLimit+4)
	}
}

func TestModelsAndHealth(t *testing.T) {
	t.Parallel()
	_, ts := startServer(t, func(c *Config) { c.Models = []string{"big", "small"}; c.KVTokens = 4096 })
	code, _, b := call(t, ts, http.MethodGet, "/v1/models", "")
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID          string `json:"id"`
			Object      string `json:"object"`
			Created     int64  `json:"created"`
			OwnedBy     string `json:"owned_by"`
			MaxModelLen int    `json:"max_model_len"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &list); code != http.StatusOK || err != nil || list.Object != "list" || len(list.Data) != 2 {
		t.Fatalf("GET /v1/models = %d %s, want 200 and a list of 2", code, b)
	}
	for i, want := range []string{"big", "small"} {
		m := list.Data[i]
		if m.ID != want || m.Object != "model" || m.Created == 0 || m.OwnedBy != "llmsim" || m.MaxModelLen != 4096 {
			t.Errorf("GET /v1/models data[%d] = %+v, want id %q, object model, created, owned_by llmsim, max_model_len 4096", i, m, want)
		}
	}
	if code, _, b := call(t, ts, http.MethodGet, "/health", ""); code != http.StatusOK {
		t.Errorf("GET /health = %d %s, want 200", code, b)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	_, ts := startServer(t, func(c *Config) { c.Models = []string{"m1", "m2"} })
	counter := newCounter(t)
	stream(t, ts, "/v1/chat/completions", `{"model":"m1","stream":true,"max_tokens":3,"messages":[{"role":"user","content":"hi"}]}`)
	post(t, ts, "/v1/completions", `{"model":"m1","prompt":"hello there"}`, http.StatusOK)
	wantPrompt := counter.CountMessages([]tokenizer.Message{{Role: "user", Content: "hi"}}) + counter.Count("hello there")

	code, _, b := call(t, ts, http.MethodGet, "/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics status = %d, want 200", code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, b)
	}
	value := func(name string, labels ...string) float64 {
		t.Helper()
		fam, ok := fams[name]
		if !ok {
			t.Errorf("GET /metrics lacks %s", name)
			return -1
		}
	metric:
		for _, m := range fam.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if got[labels[i]] != labels[i+1] {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
		t.Errorf("GET /metrics has no %s%v", name, labels)
		return -1
	}
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"vllm:num_requests_running", []string{"model_name", "m1"}, 0},
		{"vllm:num_requests_waiting", []string{"model_name", "m2"}, 0},
		{"vllm:kv_cache_usage_perc", []string{"model_name", "m1"}, 0},
		{"vllm:gpu_cache_usage_perc", []string{"model_name", "m1"}, 0},
		{"vllm:time_to_first_token_seconds", []string{"model_name", "m1"}, 2},
		{"vllm:inter_token_latency_seconds", []string{"model_name", "m1"}, 2 + 7},
		{"vllm:e2e_request_latency_seconds", []string{"model_name", "m1"}, 2},
		{"vllm:e2e_request_latency_seconds", []string{"model_name", "m2"}, 0},
		{"vllm:prompt_tokens_total", []string{"model_name", "m1"}, float64(wantPrompt)},
		{"vllm:generation_tokens_total", []string{"model_name", "m1"}, 3 + 8},
		{"vllm:request_success_total", []string{"model_name", "m1", "finished_reason", "length"}, 1},
		{"vllm:request_success_total", []string{"model_name", "m1", "finished_reason", "stop"}, 1},
		{"vllm:request_success_total", []string{"model_name", "m1", "finished_reason", "abort"}, 0},
	}
	for _, tt := range tests {
		if got := value(tt.name, tt.labels...); got != tt.want {
			t.Errorf("metric %s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}
