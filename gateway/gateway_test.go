package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tidwall/gjson"
)

// TestRunDrainsOpenStreams: after Run's context ends, an open stream still finishes, new
// connections are refused, and Run returns nil.
func TestRunDrainsOpenStreams(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	up := heldStream(t, untilClosed(release), worldChunk+doneEvent)
	g, addr, admin, _, stop, done := startRun(t, up.URL, nil)
	if code := get(t, "http://"+admin+"/metrics"); code != 200 {
		t.Errorf("admin /metrics = %d, want 200", code)
	}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Post("http://"+addr+"/v1/chat/completions", "application/json", strings.NewReader(streamBody))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, len(helloChunk))
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatalf("read first event: %v", err)
	}
	stop()
	waitFor(t, "draining", g.draining.Load)
	waitFor(t, "listener closed", func() bool {
		c, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			c.Body.Close()
		}
		return err != nil
	})
	close(release)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != worldChunk+doneEvent {
		t.Errorf("rest of the open stream = %q, %v; want it to finish with [DONE]", rest, err)
	}
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil after a clean shutdown", err)
	}
}

// TestRunShutdownDelay: during shutdown_delay /readyz answers 503 while requests are still
// served; then the listener closes.
func TestRunShutdownDelay(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, http.StatusOK, chatAnswer)
	_, addr, _, _, stop, done := startRun(t, up.URL, func(c *Config) { c.ShutdownDelay = Duration(2 * time.Second) })
	if code := get(t, "http://"+addr+"/readyz"); code != 200 {
		t.Fatalf("/readyz before shutdown = %d, want 200", code)
	}
	stop()
	waitFor(t, "/readyz to answer 503", func() bool { return get(t, "http://"+addr+"/readyz") == 503 })
	resp, err := http.Post("http://"+addr+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m"}`))
	if err != nil {
		t.Fatalf("request during shutdown_delay: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("request during shutdown_delay = %d, want 200", resp.StatusCode)
	}
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if c, err := http.Get("http://" + addr + "/healthz"); err == nil {
		c.Body.Close()
		t.Errorf("listener still open after Run returned")
	}
}

// startRun runs a gateway for model m on upstream on loopback ports until stop is called;
// done yields Run's result.
func startRun(t *testing.T, upstream string, mod func(*Config)) (g *Gateway, addr, admin string, logs *syncBuffer, stop func(), done chan error) {
	t.Helper()
	cfg := Config{Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0",
		Backends: []BackendConfig{{Name: "b0", URL: upstream}},
		Models:   []ModelConfig{{Name: "m", Backends: []string{"b0"}}}}
	if mod != nil {
		mod(&cfg)
	}
	cfg = cfg.withDefaults()
	logs = &syncBuffer{}
	g, err := New(cfg, Options{Registry: prometheus.NewRegistry(), Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	done = make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	waitFor(t, "listening log line", func() bool {
		for _, l := range strings.Split(logs.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "listening" {
				addr, admin = m["listen"].(string), m["admin_listen"].(string)
				return true
			}
		}
		return false
	})
	return g, addr, admin, logs, stop, done
}

// TestRunCutsStreamsAfterGrace: a stream still open when shutdown_grace runs out is cut,
// recorded as cut by shutdown (503, shed) rather than as a client that went away, and
// accounted before Run returns.
func TestRunCutsStreamsAfterGrace(t *testing.T) {
	t.Parallel()
	up := heldStream(t, untilCancelled, "") // never finishes on its own
	g, addr, _, logs, stop, done := startRun(t, up.URL, func(c *Config) { c.ShutdownGrace = Duration(200 * time.Millisecond) })
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Post("http://"+addr+"/v1/chat/completions", "application/json", strings.NewReader(streamBody))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, len(helloChunk))); err != nil {
		t.Fatalf("read first event: %v", err)
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if rest, err := io.ReadAll(resp.Body); err == nil {
		t.Errorf("stream cut by shutdown ended cleanly after %q; want the connection aborted", rest)
	}
	if !strings.Contains(logs.String(), `"outcome":"shed"`) || strings.Contains(logs.String(), "client_cancelled") {
		t.Errorf("log after the grace ran out:\n%s\nwant the cut stream recorded with outcome shed", logs.String())
	}
	if v := gatherValue(t, g.reg, "llmgate_requests_total", map[string]string{"code": "503", "outcome": "shed"}); v != 1 {
		t.Errorf("requests_total{503,shed} = %v, want 1", v)
	}
}

// TestDiscoveryRetriesUnlistedBackends: in discovery mode a backend whose list could not be
// read at start is retried on the health interval; until then a model it may serve gets a
// retryable 503, not a final 404, and /readyz says not ready.
func TestDiscoveryRetriesUnlistedBackends(t *testing.T) {
	t.Parallel()
	var loaded atomic.Bool
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health":
		case "/v1/models":
			if !loaded.Load() { // still loading its weights
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"late-model","object":"model"}]}`)
		default:
			_, _ = io.WriteString(w, chatAnswer)
		}
	}))
	defer up.Close()
	g, addr, _, _, stop, done := startRun(t, up.URL, func(c *Config) {
		c.Models = nil
		c.Upstream.DiscoveryInterval = Duration(time.Hour)
		c.Upstream.HealthInterval = Duration(20 * time.Millisecond)
	})
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	}()
	resp, err := http.Post("http://"+addr+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"late-model"}`))
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || gjson.Get(body, "error.code").Str != "models_not_listed_yet" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("before the list is read: %d %s, want 503 models_not_listed_yet with Retry-After", resp.StatusCode, body)
	}
	if code := get(t, "http://"+addr+"/readyz"); code != 503 {
		t.Errorf("/readyz before any model is listed = %d, want 503", code)
	}
	loaded.Store(true)
	waitFor(t, "late-model to be listed", func() bool { return g.models.Load().byName["late-model"] != nil })
	if code := get(t, "http://"+addr+"/readyz"); code != 200 {
		t.Errorf("/readyz after discovery = %d, want 200", code)
	}
	resp, err = http.Post("http://"+addr+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"late-model"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("after discovery: %d, want 200", resp.StatusCode)
	}
	resp, err = http.Post("http://"+addr+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"nope"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("unknown model once every list is read: %d, want 404", resp.StatusCode)
	}
}

// TestProbeFallsBackWithoutHealth: a server with no /health (Ollama, a plain OpenAI-compatible
// server) is probed on /v1/models instead of being marked down forever.
func TestProbeFallsBackWithoutHealth(t *testing.T) {
	t.Parallel()
	var listed atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/models":
			listed.Add(1)
			_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"m","object":"model"}]}`)
		case "/v1/chat/completions":
			_, _ = io.WriteString(w, chatAnswer)
		default:
			http.NotFound(w, r)
		}
	}))
	defer up.Close()
	g, addr, _, _, stop, done := startRun(t, up.URL, func(c *Config) { c.Upstream.HealthInterval = Duration(20 * time.Millisecond) })
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	}()
	waitFor(t, "the probe to fall back to /v1/models", g.backends[0].noHealth.Load)
	waitFor(t, "later probes on /v1/models", func() bool { return listed.Load() >= 3 })
	if !g.backends[0].up.Load() {
		t.Errorf("backend without /health marked down")
	}
	if code := get(t, "http://"+addr+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d, want 200", code)
	}
}
