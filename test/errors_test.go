package test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestErrorBodies checks the errors llmgate answers itself, each in OpenAI's shape with the
// right status and code, and that an upstream's own error reaches the client unchanged.
func TestErrorBodies(t *testing.T) {
	t.Parallel()
	const maxBody = 2048
	gw := startSharedGateway(t, "max_body_bytes: 2048\n")
	big := `{"model":"sim-model","messages":[{"role":"user","content":"` + strings.Repeat("x", maxBody) + `"}]}`
	tests := []struct {
		name, route, body string
		unsized           bool // send the body chunked, without Content-Length
		wantStatus        int
		wantCode          string // error.code; "" is null
	}{
		{"bad JSON", "/v1/chat/completions", `{"model":"sim-model","messages":[`, false, 400, ""},
		{"not an object", "/v1/chat/completions", `["sim-model"]`, false, 400, ""},
		{"missing model", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`, false, 400, ""},
		{"model not a string", "/v1/embeddings", `{"model":42,"input":"hi"}`, false, 400, ""},
		{"unknown model", "/v1/chat/completions", `{"model":"no-such-model","messages":[{"role":"user","content":"hi"}]}`, false, 404, "model_not_found"},
		{"unknown model completions", "/v1/completions", `{"model":"no-such-model","prompt":"hi"}`, false, 404, "model_not_found"},
		{"body too large", "/v1/chat/completions", big, false, 413, "request_too_large"},
		{"body too large chunked", "/v1/chat/completions", big, true, 413, "request_too_large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var rd io.Reader = strings.NewReader(tc.body)
			if tc.unsized {
				rd = io.MultiReader(rd) // hides the length, so the body goes chunked
			}
			req, err := http.NewRequestWithContext(reqCtx(t), http.MethodPost, gw.url+tc.route, rd)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := newHTTPClient(t).Do(req)
			if err != nil {
				t.Fatalf("POST %s %.80s: %v", tc.route, tc.body, err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("POST %s %.80s = %d, want %d:\n%s", tc.route, tc.body, resp.StatusCode, tc.wantStatus, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("POST %s %.80s: Content-Type %q, want application/json", tc.route, tc.body, ct)
			}
			if code := checkErrorBody(t, body); code != tc.wantCode {
				t.Errorf("POST %s %.80s: error.code %q, want %q:\n%s", tc.route, tc.body, code, tc.wantCode, body)
			}
		})
	}
}

// TestUpstreamErrorPassthrough checks that an upstream's own error status, headers that
// matter and body reach the client unchanged.
func TestUpstreamErrorPassthrough(t *testing.T) {
	t.Parallel()
	gw := startSharedGateway(t, "")
	tests := []struct {
		fail, route, body string
		wantStatus        int
	}{
		{"500", "/v1/chat/completions", `{"model":"sim-model","messages":[{"role":"user","content":"hi"}]}`, 500},
		{"500", "/v1/chat/completions", `{"model":"sim-model","messages":[{"role":"user","content":"hi"}],"stream":true}`, 500},
		{"429", "/v1/chat/completions", `{"model":"sim-model","messages":[{"role":"user","content":"hi"}]}`, 429},
		{"429", "/v1/completions", `{"model":"sim-model","prompt":"hi","stream":true}`, 429},
		{"500", "/v1/embeddings", `{"model":"sim-model","input":"hi"}`, 500},
	}
	for _, tc := range tests {
		t.Run(tc.fail+tc.route, func(t *testing.T) {
			t.Parallel()
			hc := newHTTPClient(t)
			hdr := headers("X-Sim-Fail", tc.fail)
			direct, wantBody := do(t, hc, http.MethodPost, suite.sim.url+tc.route, tc.body, hdr)
			if direct.StatusCode != tc.wantStatus {
				t.Fatalf("llmsim answered X-Sim-Fail: %s with %d, want %d (test setup)", tc.fail, direct.StatusCode, tc.wantStatus)
			}
			resp, got := do(t, hc, http.MethodPost, gw.url+tc.route, tc.body, hdr)
			if resp.StatusCode != tc.wantStatus || !bytes.Equal(got, wantBody) {
				t.Errorf("POST %s %s with X-Sim-Fail: %s = %d\n%s\nwant llmsim's %d\n%s", tc.route, tc.body, tc.fail,
					resp.StatusCode, got, tc.wantStatus, wantBody)
			}
			for _, h := range []string{"Content-Type", "Retry-After"} {
				if resp.Header.Get(h) != direct.Header.Get(h) {
					t.Errorf("X-Sim-Fail: %s: header %s = %q, want llmsim's %q", tc.fail, h, resp.Header.Get(h), direct.Header.Get(h))
				}
			}
		})
	}
}

// freePort returns a loopback address on which nothing listens: it listens on port 0 and
// closes the listener.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// TestUnreachableBackend checks the answers for a backend that cannot be reached: 502 when
// a connection fails, 503 with Retry-After once the backend is known to be down, and a
// retry on another backend of the pool when one is left.
func TestUnreachableBackend(t *testing.T) {
	t.Parallel()
	// dying answers health probes until it is closed, as a backend that crashes after start.
	var probes atomic.Int64
	dying := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			probes.Add(1)
			return
		}
		http.Error(w, "this backend only answers health probes", http.StatusTeapot)
	}))
	// No keep-alive: llmgate must dial again after the probe, rather than find a pooled
	// connection that the close below cuts.
	dying.Config.SetKeepAlivesEnabled(false)
	dying.Start()
	defer dying.Close()
	closedPort := "http://" + freePort(t)

	cfg := `listen: "127.0.0.1:0"
admin_listen: "127.0.0.1:0"
upstream:
  health_interval: 1h
backends:
  - name: dying
    url: "` + dying.URL + `"
  - name: closed
    url: "` + closedPort + `"
  - name: sim
    url: "` + suite.sim.url + `"
models:
  - name: sim-model
    backends: [dying]
  - name: sim-small
    backends: [closed]
  - name: failover
    backends: [closed, sim]
    upstream_model: sim-model
`
	gw := startGatewayConfig(t, cfg, nil)
	hc := newHTTPClient(t)
	chat := func(model string) (*http.Response, []byte) {
		return do(t, hc, http.MethodPost, gw.url+"/v1/chat/completions",
			`{"model":"`+model+`","messages":[{"role":"user","content":"hi"}],"max_tokens":2}`, nil)
	}

	// The failover pool answers from its live backend whichever it tries first.
	for range 2 {
		if resp, b := chat("failover"); resp.StatusCode != http.StatusOK || resp.Header.Get("X-LLMGate-Backend") != "sim" {
			t.Errorf("chat(failover) = %d from backend %q, want 200 from sim:\n%s", resp.StatusCode, resp.Header.Get("X-LLMGate-Backend"), b)
		}
	}

	// A backend on a closed port fails its first probe, so it is known to be down: 503.
	resp, b := chat(simSmall)
	switch resp.StatusCode {
	case http.StatusServiceUnavailable:
		if code := checkErrorBody(t, b); code != "no_healthy_backend" || resp.Header.Get("Retry-After") == "" {
			t.Errorf("chat(closed port) = 503 with code %q, Retry-After %q; want no_healthy_backend and Retry-After:\n%s",
				code, resp.Header.Get("Retry-After"), b)
		}
	case http.StatusBadGateway: // the request beat the first probe
		if code := checkErrorBody(t, b); code != "upstream_unreachable" {
			t.Errorf("chat(closed port) = 502 with code %q, want upstream_unreachable:\n%s", code, b)
		}
	default:
		t.Errorf("chat(closed port) = %d, want 502 or 503 in OpenAI's error shape:\n%s", resp.StatusCode, b)
	}

	// A backend that passed its probe and then went away: the dial fails, 502.
	if !poll(settleTimeout, func() bool { return probes.Load() > 0 }) {
		t.Fatal("llmgate never probed the dying backend's /health")
	}
	dying.Close()
	resp, b = chat(simModel)
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("chat(backend gone after its probe) = %d, want 502:\n%s", resp.StatusCode, b)
	} else if code := checkErrorBody(t, b); code != "upstream_unreachable" {
		t.Errorf("chat(backend gone) error.code = %q, want upstream_unreachable:\n%s", code, b)
	}
	// The failed dial marked it down: now 503 with Retry-After, until a probe passes.
	resp, b = chat(simModel)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("chat(backend known down) = %d with Retry-After %q, want 503 with Retry-After:\n%s",
			resp.StatusCode, resp.Header.Get("Retry-After"), b)
	} else if code := checkErrorBody(t, b); code != "no_healthy_backend" {
		t.Errorf("chat(backend known down) error.code = %q, want no_healthy_backend:\n%s", code, b)
	}

	// /readyz stays 200 while one backend is up.
	if resp, b := do(t, hc, http.MethodGet, gw.url+"/readyz", "", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /readyz with the sim backend up = %d, want 200:\n%s", resp.StatusCode, b)
	}
}
