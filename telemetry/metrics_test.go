package telemetry

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsNamesAndValues(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(Prefixed(reg), "v1.2.3")
	if err != nil {
		t.Fatalf("NewMetrics: %v", err)
	}
	m.Finish("/v1/chat/completions", "llama", 200, "ok", 30*time.Millisecond)
	m.Tokens("llama", SourceUpstream, 12, 34)
	m.Tokens("llama", SourceEstimated, 0, 5)
	s := m.Stream("llama", "a")
	Observe(s.TTFT, 20*time.Millisecond)
	Observe(s.InterToken, 5*time.Millisecond)
	Observe(StreamObserver{}.TTFT, time.Second) // nil observer is a no-op
	m.Active("/v1/chat/completions").Inc()

	cases := []struct {
		name string
		got  float64
		want float64
	}{
		{"requests_total", testutil.ToFloat64(m.requests.WithLabelValues("/v1/chat/completions", "llama", "200", "ok")), 1},
		{"tokens input upstream", testutil.ToFloat64(m.tokens.WithLabelValues("llama", "input", "upstream")), 12},
		{"tokens output upstream", testutil.ToFloat64(m.tokens.WithLabelValues("llama", "output", "upstream")), 34},
		{"tokens output estimated", testutil.ToFloat64(m.tokens.WithLabelValues("llama", "output", "estimated")), 5},
		{"active", testutil.ToFloat64(m.active.WithLabelValues("/v1/chat/completions")), 1},
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
		"llmgate_inter_token_latency_seconds", "llmgate_tokens_total", "llmgate_active_requests",
		"llmgate_build_info"}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	have := map[string]bool{}
	for _, mf := range mfs {
		have[mf.GetName()] = true
	}
	for _, n := range names {
		if !have[n] {
			t.Errorf("metric %s not exported; have %v", n, have)
		}
	}
	for _, mf := range mfs {
		if mf.GetName() != "llmgate_time_to_first_token_seconds" {
			continue
		}
		if got := mf.GetMetric()[0].GetHistogram().GetSampleCount(); got != 1 {
			t.Errorf("TTFT sample count = %d, want 1", got)
		}
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
