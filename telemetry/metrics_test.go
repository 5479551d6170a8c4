package telemetry

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"
)

const chatRoute = "/v1/chat/completions"

func newTestMetrics(t *testing.T) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(Prefixed(reg), "v1.2.3")
	if err != nil {
		t.Fatalf("NewMetrics: %v", err)
	}
	return m, reg
}

func TestMetricsNamesAndValues(t *testing.T) {
	t.Parallel()
	m, reg := newTestMetrics(t)
	_, r := m.Start(context.Background(), Tracer(nil), chatRoute, "chat", "id-1")
	r.SetModel("llama", "llama", 0)
	r.StartAttempt(context.Background(), "a", "127.0.0.1", 8000)
	s := r.Stream()
	r.FirstToken(s, 20*time.Millisecond, 15*time.Millisecond)
	Observe(s.InterToken, 5*time.Millisecond)
	Observe(StreamObserver{}.TTFT, time.Second) // nil observer is a no-op
	r.Retry("connect")
	r.Finish(Outcome{Code: 200, Outcome: "ok", Duration: 30 * time.Millisecond,
		Tokens: Tokens{Input: 12, Output: 34, Source: SourceUpstream}, CostUSD: 0.5})
	_, r2 := m.Start(context.Background(), Tracer(nil), chatRoute, "chat", "id-2")
	r2.SetModel("llama", "llama", 0)
	r2.Finish(Outcome{Code: 499, Outcome: "client_cancelled", Tokens: Tokens{Output: 5, Source: SourceEstimated}})
	m.Active(chatRoute).Inc()

	cases := []struct {
		name string
		got  float64
		want float64
	}{
		{"requests_total ok", testutil.ToFloat64(m.requests.WithLabelValues(chatRoute, "llama", "200", "ok", NoTenant)), 1},
		{"requests_total 499", testutil.ToFloat64(m.requests.WithLabelValues(chatRoute, "llama", "499", "client_cancelled", NoTenant)), 1},
		{"tokens input upstream", testutil.ToFloat64(m.tokens.WithLabelValues("llama", "input", "upstream", NoTenant)), 12},
		{"tokens output upstream", testutil.ToFloat64(m.tokens.WithLabelValues("llama", "output", "upstream", NoTenant)), 34},
		{"tokens output estimated", testutil.ToFloat64(m.tokens.WithLabelValues("llama", "output", "estimated", NoTenant)), 5},
		{"cost", testutil.ToFloat64(m.cost.WithLabelValues("llama", NoTenant)), 0.5},
		{"retries", testutil.ToFloat64(m.retries.WithLabelValues("llama", "connect")), 1},
		{"active", testutil.ToFloat64(m.active.WithLabelValues(chatRoute)), 1},
		{"build_info", testutil.ToFloat64(m.buildInfo.WithLabelValues("v1.2.3", runtime.Version())), 1},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if n := testutil.CollectAndCount(m.tokens); n != 3 {
		t.Errorf("tokens series = %d, want 3 (no zero-valued input series)", n)
	}
	names := []string{"llmgate_requests_total", "llmgate_request_duration_seconds",
		"llmgate_time_to_first_token_seconds", "llmgate_upstream_time_to_first_token_seconds",
		"llmgate_inter_token_latency_seconds", "llmgate_tokens_total", "llmgate_cost_usd_total",
		"llmgate_retries_total", "llmgate_active_requests", "llmgate_build_info"}
	have := gatherFamilies(t, reg)
	for _, n := range names {
		if have[n] == nil {
			t.Errorf("metric %s not exported", n)
		}
	}
	if got := have["llmgate_time_to_first_token_seconds"].GetMetric()[0].GetHistogram().GetSampleCount(); got != 1 {
		t.Errorf("TTFT sample count = %d, want 1", got)
	}
}

func gatherFamilies(t *testing.T, g prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	have := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		have[mf.GetName()] = mf
	}
	return have
}

// TestNativeHistogramsBesideClassic: every latency histogram keeps its classic buckets and
// also carries native (sparse) buckets, which a scraper negotiating protobuf receives.
func TestNativeHistogramsBesideClassic(t *testing.T) {
	t.Parallel()
	m, reg := newTestMetrics(t)
	_, r := m.Start(context.Background(), Tracer(nil), chatRoute, "chat", "id")
	r.SetModel("llama", "llama", 0)
	r.StartAttempt(context.Background(), "a", "h", 1)
	s := r.Stream()
	r.FirstToken(s, 20*time.Millisecond, 10*time.Millisecond)
	Observe(s.InterToken, 7*time.Millisecond)
	Observe(s.Generation, time.Second)
	r.Finish(Outcome{Code: 200, Outcome: "ok", Duration: time.Second})
	have := gatherFamilies(t, reg)
	for _, name := range []string{"llmgate_request_duration_seconds", "llmgate_time_to_first_token_seconds",
		"llmgate_upstream_time_to_first_token_seconds", "llmgate_inter_token_latency_seconds",
		"llmgate_generation_duration_seconds"} {
		h := have[name].GetMetric()[0].GetHistogram()
		if len(h.GetBucket()) == 0 {
			t.Errorf("%s has no classic buckets", name)
		}
		if h.Schema == nil || len(h.GetPositiveSpan()) == 0 {
			t.Errorf("%s has no native buckets (schema %v, spans %v)", name, h.Schema, h.GetPositiveSpan())
		}
	}
}

// TestSpansAndExemplars: a sampled request gets a server span with the GenAI attributes, a
// client span per attempt as its child, the first_token event, and the trace ID as exemplar
// on the duration and TTFT histograms.
func TestSpansAndExemplars(t *testing.T) {
	t.Parallel()
	m, reg := newTestMetrics(t)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer func() { _ = tp.Shutdown(context.Background()) }()

	ctx, r := m.Start(context.Background(), Tracer(tp), chatRoute, "chat", "req-9")
	r.SetModel("llama", "llama-client-name", 64)
	_, a := r.StartAttempt(ctx, "vllm-a", "10.0.0.7", 8000)
	s := r.Stream()
	r.FirstToken(s, 20*time.Millisecond, 15*time.Millisecond)
	a.End(200, nil)
	r.Finish(Outcome{Code: 200, Outcome: "ok", Duration: time.Second, ResponseModel: "up-llama",
		Tokens: Tokens{Input: 3, Output: 4, Source: SourceUpstream}, FinishReasons: []string{"stop"}})

	ended := spans.Ended()
	if len(ended) != 2 {
		t.Fatalf("ended spans = %d, want 2", len(ended))
	}
	client, server := ended[0], ended[1]
	if server.Name() != "POST "+chatRoute || client.Name() != "chat llama" {
		t.Errorf("span names = %q, %q; want %q, %q", server.Name(), client.Name(), "POST "+chatRoute, "chat llama")
	}
	if client.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Errorf("client span's parent = %s, want the server span %s", client.Parent().SpanID(), server.SpanContext().SpanID())
	}
	attrs := map[string]string{}
	for _, kv := range server.Attributes() {
		attrs[string(kv.Key)] = fmt.Sprint(kv.Value.AsInterface())
	}
	for k, want := range map[string]string{"gen_ai.operation.name": "chat", "gen_ai.request.model": "llama-client-name",
		"gen_ai.response.model": "up-llama", "gen_ai.request.max_tokens": "64", "gen_ai.usage.input_tokens": "3",
		"gen_ai.usage.output_tokens": "4", "gen_ai.response.finish_reasons": `[stop]`,
		"http.response.status_code": "200", "llmgate.outcome": "ok", "llmgate.request_id": "req-9"} {
		if attrs[k] != want {
			t.Errorf("server span %s = %q, want %q", k, attrs[k], want)
		}
	}
	if ev := server.Events(); len(ev) != 1 || ev[0].Name != FirstTokenEvent {
		t.Errorf("server span events = %v, want one %s", ev, FirstTokenEvent)
	}
	traceID := server.SpanContext().TraceID().String()
	have := gatherFamilies(t, reg)
	for _, name := range []string{"llmgate_request_duration_seconds", "llmgate_time_to_first_token_seconds"} {
		if got := exemplarTraceID(have[name]); got != traceID {
			t.Errorf("%s exemplar trace_id = %q, want %q", name, got, traceID)
		}
	}
}

func exemplarTraceID(mf *dto.MetricFamily) string {
	for _, b := range mf.GetMetric()[0].GetHistogram().GetBucket() {
		if e := b.GetExemplar(); e != nil {
			for _, l := range e.GetLabel() {
				if l.GetName() == "trace_id" {
					return l.GetValue()
				}
			}
		}
	}
	return ""
}

// TestFailedRequestSpanIsError: a request that did not end ok has an error status.
func TestFailedRequestSpanIsError(t *testing.T) {
	t.Parallel()
	m, _ := newTestMetrics(t)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	ctx, r := m.Start(context.Background(), Tracer(tp), chatRoute, "chat", "x")
	_, a := r.StartAttempt(ctx, "b", "h", 1)
	a.End(0, errors.New("dial refused"))
	r.Finish(Outcome{Code: 502, Outcome: "upstream_error", Err: errors.New("backend unreachable")})
	for _, s := range spans.Ended() {
		if s.Status().Code.String() != "Error" {
			t.Errorf("span %q status = %v, want Error", s.Name(), s.Status())
		}
	}
}

// TestRequestWithoutTracing: with a no-op provider a request records metrics, and keeps no
// exemplar and no trace ID.
func TestRequestWithoutTracing(t *testing.T) {
	t.Parallel()
	m, _ := newTestMetrics(t)
	_, r := m.Start(context.Background(), Tracer(noop.NewTracerProvider()), chatRoute, "chat", "x")
	if r.Recording() || r.TraceID() != "" || r.exemplar != nil {
		t.Errorf("untraced request: recording %v, trace ID %q, exemplar %v; want none", r.Recording(), r.TraceID(), r.exemplar)
	}
	r.Finish(Outcome{Code: 200, Outcome: "ok"})
	if v := testutil.ToFloat64(m.requests.WithLabelValues(chatRoute, "other", "200", "ok", NoTenant)); v != 1 {
		t.Errorf("requests_total = %v, want 1", v)
	}
}

func TestNewMetricsTwiceFails(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(reg, "x"); err != nil {
		t.Fatalf("first NewMetrics: %v", err)
	}
	if _, err := NewMetrics(reg, "x"); err == nil {
		t.Errorf("second NewMetrics on the same registry: err = nil, want a registration error")
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		cfg     Config
		wantErr []string
	}{
		{"defaults", Config{}.WithDefaults(), nil},
		{"debug text", Config{LogLevel: "debug", LogFormat: "text"}, nil},
		{"bad both", Config{LogLevel: "loud", LogFormat: "xml"}, []string{"telemetry.log_level", "telemetry.log_format"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := c.cfg.Validate("telemetry.")
			if len(c.wantErr) == 0 && err != nil {
				t.Fatalf("Validate(%+v) = %v, want nil", c.cfg, err)
			}
			for _, w := range c.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Validate(%+v) = %v, want mention of %q", c.cfg, err, w)
				}
			}
		})
	}
}
