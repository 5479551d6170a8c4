package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// syncBuffer is a bytes.Buffer safe for the logger and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fixture is a gateway serving its public routes on a loopback httptest server.
type fixture struct {
	g    *Gateway
	srv  *httptest.Server
	reg  *prometheus.Registry
	logs *syncBuffer
}

// newFixture starts a gateway whose model "m" (upstream name "up-m") is served by the given
// upstream URLs, in order, as backends b0, b1, ….
func newFixture(t *testing.T, mod func(*Config), upstreams ...string) *fixture {
	t.Helper()
	return newTracedFixture(t, mod, nil, upstreams...)
}

// newTracedFixture is newFixture with spans made by tp.
func newTracedFixture(t *testing.T, mod func(*Config), tp trace.TracerProvider, upstreams ...string) *fixture {
	t.Helper()
	cfg := Config{Models: []ModelConfig{{Name: "m", UpstreamModel: "up-m"}}}
	for i, u := range upstreams {
		name := "b" + string(rune('0'+i))
		cfg.Backends = append(cfg.Backends, BackendConfig{Name: name, URL: u})
		cfg.Models[0].Backends = append(cfg.Models[0].Backends, name)
	}
	if mod != nil {
		mod(&cfg)
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	f := &fixture{reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	g, err := New(cfg, Options{Registry: f.reg, Version: "test", TracerProvider: tp,
		Logger: slog.New(slog.NewJSONHandler(f.logs, nil))})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.g = g
	f.srv = httptest.NewServer(g.publicRoutes())
	t.Cleanup(func() {
		f.srv.Close()
		g.client.CloseIdleConnections()
	})
	return f
}

func (f *fixture) post(t *testing.T, path, body string, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatalf("NewRequest: %v", err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// metric returns the value of the counter or gauge series name{labels}, or the sample count
// of a histogram; -1 when there is no such series.
func (f *fixture) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	return gatherValue(t, f.reg, name, labels)
}

// gatherValue is fixture.metric for any registry.
func gatherValue(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

// requests returns llmgate_requests_total for model "m" on the chat route.
func (f *fixture) requests(t *testing.T, code, outcome string) float64 {
	t.Helper()
	return f.metric(t, "llmgate_requests_total", map[string]string{"route": "/v1/chat/completions",
		"model": "m", "code": code, "outcome": outcome})
}

// logLines returns the access-log lines, decoded.
func (f *fixture) logLines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(f.logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		if m["msg"] == "request" {
			out = append(out, m)
		}
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sseUpstream is a fake backend that answers with the given raw SSE writes, flushing after each.
func sseUpstream(t *testing.T, writes ...string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		for _, s := range writes {
			_, _ = io.WriteString(w, s)
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// heldStream is a fake backend that streams helloChunk, then holds the stream until hold
// returns, and finishes with rest if hold returned true. It also answers /health.
func heldStream(t *testing.T, hold func(r *http.Request) bool, rest string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, helloChunk)
		w.(http.Flusher).Flush()
		if hold(r) {
			_, _ = io.WriteString(w, rest)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// untilClosed holds a heldStream until ch is closed (then it finishes) or the gateway cancels.
func untilClosed(ch <-chan struct{}) func(*http.Request) bool {
	return func(r *http.Request) bool {
		select {
		case <-ch:
			return true
		case <-r.Context().Done():
			return false
		}
	}
}

// untilCancelled holds a heldStream until the gateway cancels the request.
func untilCancelled(r *http.Request) bool {
	<-r.Context().Done()
	return false
}

func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
