package gateway

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

const (
	clientTraceID  = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientParentID = "00f067aa0ba902b7"
	clientTrace    = "00-" + clientTraceID + "-" + clientParentID + "-01"
)

// TestTraceContextReachesBackendWithoutExport: with no tracer provider, the caller's trace
// context still reaches the backend, so that its own spans join the caller's trace.
func TestTraceContextReachesBackendWithoutExport(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, http.StatusOK, chatAnswer)
	f := newFixture(t, nil, up.URL)
	resp := f.post(t, "/v1/chat/completions", `{"model":"m"}`, "Traceparent", clientTrace, "Tracestate", "vendor=1")
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	if got := up.header.Get("Traceparent"); got != clientTrace {
		t.Errorf("upstream traceparent = %q, want the caller's %q", got, clientTrace)
	}
	if got := up.header.Get("Tracestate"); got != "vendor=1" {
		t.Errorf("upstream tracestate = %q, want vendor=1", got)
	}
}

// TestSpansJoinCallerTrace: with tracing on, the server span is a child of the caller's span,
// the attempt's client span a child of the server span, and the backend gets the client
// span's context; the access log carries the trace ID.
func TestSpansJoinCallerTrace(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	up := sseUpstream(t, roleChunk, helloChunk, finishChunk, usageChunk, doneEvent)
	var upstreamTrace string
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamTrace = r.Header.Get("Traceparent")
		up.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(rec.Close)
	f := newTracedFixture(t, nil, tp, rec.URL)
	resp := f.post(t, "/v1/chat/completions", `{"model":"m","stream":true,"max_tokens":9,"messages":[{"role":"user","content":"secret-prompt-text"}]}`,
		"Traceparent", clientTrace)
	if body := readAll(t, resp.Body); !strings.Contains(body, "hello") {
		t.Fatalf("body = %q", body)
	}
	f.srv.Close()
	ended := spans.Ended()
	if len(ended) != 2 {
		t.Fatalf("spans = %d, want a server and a client span", len(ended))
	}
	client, server := ended[0], ended[1]
	if server.SpanContext().TraceID().String() != clientTraceID || server.Parent().SpanID().String() != clientParentID {
		t.Errorf("server span trace %s parent %s, want %s and %s", server.SpanContext().TraceID(),
			server.Parent().SpanID(), clientTraceID, clientParentID)
	}
	if client.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Errorf("client span parent = %s, want the server span %s", client.Parent().SpanID(), server.SpanContext().SpanID())
	}
	want := "00-" + clientTraceID + "-" + client.SpanContext().SpanID().String() + "-01"
	if upstreamTrace != want {
		t.Errorf("upstream traceparent = %q, want %q (the client span)", upstreamTrace, want)
	}
	attrs := map[string]string{}
	for _, kv := range server.Attributes() {
		attrs[string(kv.Key)] = fmt.Sprint(kv.Value.AsInterface())
	}
	for k, v := range map[string]string{"gen_ai.request.model": "m", "gen_ai.response.model": "up-m",
		"gen_ai.request.max_tokens": "9", "gen_ai.usage.input_tokens": "11", "gen_ai.usage.output_tokens": "2",
		"gen_ai.response.finish_reasons": `[length]`, "llmgate.backend": "b0"} {
		if attrs[k] != v {
			t.Errorf("server span %s = %q, want %q", k, attrs[k], v)
		}
	}
	for _, s := range ended {
		for _, kv := range s.Attributes() {
			if strings.Contains(fmt.Sprint(kv.Value.AsInterface()), "secret-prompt-text") || strings.Contains(fmt.Sprint(kv.Value.AsInterface()), "hello") {
				t.Errorf("span %q attribute %s holds request or answer text: %q", s.Name(), kv.Key, fmt.Sprint(kv.Value.AsInterface()))
			}
		}
	}
	if !strings.Contains(f.logs.String(), `"trace_id":"`+clientTraceID+`"`) {
		t.Errorf("access log lacks the trace ID:\n%s", f.logs.String())
	}
	admin := httptest.NewServer(f.g.adminRoutes())
	defer admin.Close()
	req, _ := http.NewRequest(http.MethodGet, admin.URL+"/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0; charset=utf-8")
	mresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	exposition := readAll(t, mresp.Body)
	mresp.Body.Close()
	for _, name := range []string{"llmgate_request_duration_seconds_bucket", "llmgate_time_to_first_token_seconds_bucket"} {
		found := false
		for _, line := range strings.Split(exposition, "\n") {
			found = found || strings.HasPrefix(line, name) && strings.Contains(line, `# {trace_id="`+clientTraceID+`"}`)
		}
		if !found {
			t.Errorf("OpenMetrics scrape has no %s line with the trace_id exemplar", name)
		}
	}
}

// TestCostAndRetries: the price table turns usage into llmgate_cost_usd_total and a cost_usd
// log field; a request sent again after a refused connection counts in retries_total.
func TestCostAndRetries(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, http.StatusOK, chatAnswer) // usage: 5 in, 2 out
	f := newFixture(t, func(c *Config) {
		c.Models[0].Price = Price{InputPerMillion: 2e5, OutputPerMillion: 1e6} // $0.2 and $1 per token
	}, closedURL(t), up.URL)
	f.g.backends[1].inflight.Store(1) // the dead backend is picked first
	resp := f.post(t, "/v1/chat/completions", `{"model":"m"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d, want 200 from the second backend", resp.StatusCode)
	}
	f.g.backends[1].inflight.Store(0)
	f.srv.Close()
	if v := f.metric(t, "llmgate_cost_usd_total", map[string]string{"model": "m", "tenant": "none"}); v != 3 {
		t.Errorf("cost_usd_total = %v, want 3 (5 × 0.2 + 2 × 1)", v)
	}
	if v := f.metric(t, "llmgate_retries_total", map[string]string{"model": "m", "reason": "connect"}); v != 1 {
		t.Errorf("retries_total{connect} = %v, want 1", v)
	}
	if !strings.Contains(f.logs.String(), `"cost_usd":3`) {
		t.Errorf("access log lacks cost_usd:\n%s", f.logs.String())
	}
}

// TestSeriesCountFlatUnderFlood: random model names, paths, headers and tenant-like values
// never create metric series: after a first flood, a second one adds none.
func TestSeriesCountFlatUnderFlood(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, newRecorder(t, http.StatusOK, chatAnswer).URL)
	flood := func() {
		for i := range 200 {
			junk := fmt.Sprintf("x%d-%d", i, rand.Uint64())
			paths := []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/" + junk}
			f.post(t, paths[i%len(paths)], `{"model":"`+junk+`","stream":`+[]string{"true", "false"}[i%2]+`}`,
				"X-LLMGate-Tenant", junk, "X-Request-Id", junk, "OpenAI-Organization", junk, "User-Agent", junk)
			f.post(t, "/v1/chat/completions", `{"model":"m","user":"`+junk+`"}`, "X-LLMGate-Priority", junk)
		}
	}
	flood()
	before := seriesCount(t, f.reg)
	flood()
	if after := seriesCount(t, f.reg); after != before {
		t.Errorf("series after a second flood = %d, want %d as after the first", after, before)
	}
}

func seriesCount(t *testing.T, g prometheus.Gatherer) int {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		n += len(mf.GetMetric())
	}
	return n
}

// TestPprofOnlyWhenEnabled: the admin listener serves the profiler only when configured.
func TestPprofOnlyWhenEnabled(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{false, true} {
		f := newFixture(t, func(c *Config) { c.Telemetry.Pprof = on }, newRecorder(t, http.StatusOK, chatAnswer).URL)
		admin := httptest.NewServer(f.g.adminRoutes())
		resp, err := http.Get(admin.URL + "/debug/pprof/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		admin.Close()
		if got := resp.StatusCode == 200; got != on {
			t.Errorf("pprof %v: /debug/pprof/cmdline = %d", on, resp.StatusCode)
		}
	}
}
