package test

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
)

// TestGracefulShutdown sends SIGTERM to llmgate while a stream runs: the listener closes at
// once, the stream completes, and the process exits 0 within the grace period.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	const grace, tokens = 10 * time.Second, 30
	gw := startSharedGateway(t, "shutdown_grace: 10s\n")
	hc := newHTTPClient(t)
	id := newRequestID(t)
	body := `{"model":"sim-model","messages":[{"role":"user","content":"take your time"}],"max_tokens":30,"stream":true}`
	resp := send(t, hc, http.MethodPost, gw.url+"/v1/chat/completions", body,
		headers("X-Request-Id", id, "X-Sim-ITL", "50ms")) // about 1.5 s of tokens
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s = %d, want 200", body, resp.StatusCode)
	}
	events := newSSEReader(resp.Body)
	var got []string
	for {
		data, err := events.next()
		if err != nil {
			t.Fatalf("stream ended before its first content chunk: %v", err)
		}
		got = append(got, data)
		if text, _ := streamText(t, got); text != "" {
			break
		}
	}

	if err := gw.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("send SIGTERM: %v", err)
	}
	signalled := time.Now()
	addr := strings.TrimPrefix(gw.url, "http://")
	if !poll(settleTimeout, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		_ = c.Close()
		return false
	}) {
		t.Errorf("llmgate still accepts connections on %s %s after SIGTERM", addr, settleTimeout)
	}
	fresh := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	if r, err := fresh.Get(gw.url + "/healthz"); err == nil {
		_ = r.Body.Close()
		t.Errorf("GET /healthz on a new connection during shutdown = %d, want the connection refused", r.StatusCode)
	}

	for {
		data, err := events.next()
		if err != nil {
			t.Fatalf("stream after SIGTERM failed after %d events: %v", len(got), err)
		}
		got = append(got, data)
		if data == "[DONE]" {
			break
		}
	}
	text, _ := streamText(t, got)
	if n := len(strings.Fields(text)); n != tokens {
		t.Errorf("stream across SIGTERM has %d words, want %d: %q", n, tokens, text)
	}

	code, exited := gw.waitExit(grace + 5*time.Second)
	took := time.Since(signalled)
	switch {
	case !exited:
		t.Fatalf("llmgate still runs %s after SIGTERM", took)
	case code != 0:
		t.Errorf("llmgate exited %d after SIGTERM, want 0", code)
	case took > grace:
		t.Errorf("llmgate took %s to exit after SIGTERM, want at most shutdown_grace %s", took, grace)
	}
	t.Logf("llmgate exited %s after SIGTERM", took.Round(time.Millisecond))
	if l := requestLog(t, gw, id); l.str("outcome") != "ok" {
		t.Errorf("access log of the stream across SIGTERM: outcome %q, want ok\n%v", l.str("outcome"), l)
	}
}

// TestConfigCheck runs llmgate -check and -version.
func TestConfigCheck(t *testing.T) {
	t.Parallel()
	const header = "listen: \"127.0.0.1:0\"\nadmin_listen: \"127.0.0.1:0\"\n"
	good := header + "backends:\n  - name: a\n    url: \"http://127.0.0.1:8000\"\nmodels:\n  - name: m\n    backends: [a]\n"
	tests := []struct {
		name     string
		config   string // written to a file and passed as -config, when set
		args     []string
		wantCode int
		wantOut  []string
	}{
		{"several problems", header + "bogus_key: 1\nbackends:\n  - name: a\n    url: \"ftp//nope\"\n" +
			"models:\n  - name: m\n    backends: [missing]\n", []string{"-check"}, 1,
			[]string{"bogus_key", "backends[0].url", `no backend is named "missing"`}},
		{"several problems, no unknown key", header + "backends:\n  - name: a\n    url: \"ftp//nope\"\n" +
			"    api_key_env: E2E_UNSET_KEY_VAR\nmodels:\n  - name: m\n    backends: [missing]\n" +
			"telemetry:\n  log_level: loud\n", []string{"-check"}, 1,
			[]string{"backends[0].url", "E2E_UNSET_KEY_VAR", `no backend is named "missing"`, "telemetry.log_level"}},
		{"good config", good, []string{"-check"}, 0, []string{"config OK"}},
		{"version", "", []string{"-version"}, 0, []string{"llmgate "}},
		{"no backends", "", []string{"-check"}, 1, []string{"no backends"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := tc.args
			if tc.config != "" {
				args = append([]string{"-config", writeConfig(t, tc.config)}, args...)
			}
			p, err := startProc("llmgate", filepath.Join(t.TempDir(), "out.log"), true, []string{"LLMGATE_CONFIG="}, args...)
			if err != nil {
				t.Fatal(err)
			}
			own(t, p)
			code, ok := p.waitExit(startTimeout)
			if !ok {
				t.Fatalf("llmgate %q still runs after %s", args, startTimeout)
			}
			out := p.logs()
			if code != tc.wantCode {
				t.Errorf("llmgate %q exited %d, want %d; output:\n%s", args, code, tc.wantCode, out)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("llmgate %q output does not name %q:\n%s", args, w, out)
				}
			}
		})
	}
}

// TestQuickStart runs llmgate -backend URL: it serves every model the backend lists.
func TestQuickStart(t *testing.T) {
	t.Parallel()
	models := []string{"alpha", "gamma", "org/beta-7b"} // sorted, as /v1/models lists them
	sim := startSim(t, "-model", models[0], "-model", models[1], "-model", models[2], "-ttft", "1ms", "-itl", "1ms")
	gw := startGateway(t, nil, "-backend", sim.url+"/v1", "-listen", "127.0.0.1:0", "-admin-listen", "127.0.0.1:0")
	hc := newHTTPClient(t)

	if !poll(settleTimeout, func() bool {
		resp, _ := do(t, hc, http.MethodGet, gw.url+"/readyz", "", nil)
		return resp.StatusCode == http.StatusOK
	}) {
		t.Errorf("GET /readyz never answered 200 with the backend up")
	}
	if resp, b := do(t, hc, http.MethodGet, gw.url+"/healthz", "", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz = %d, want 200:\n%s", resp.StatusCode, b)
	}

	_, b := do(t, hc, http.MethodGet, gw.url+"/v1/models", "", nil)
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID     string `json:"id"`
			Object string `json:"object"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatalf("GET /v1/models: %v\n%s", err, b)
	}
	var ids []string
	for _, m := range list.Data {
		ids = append(ids, m.ID)
		if m.Object != "model" {
			t.Errorf("GET /v1/models: %s has object %q, want model", m.ID, m.Object)
		}
	}
	slices.Sort(ids)
	if list.Object != "list" || !slices.Equal(ids, models) {
		t.Errorf("GET /v1/models = object %q with %q, want list with %q", list.Object, ids, models)
	}

	gwc, simc := sdkClient(t, gw.url), sdkClient(t, sim.url)
	for _, m := range models {
		resp, b := do(t, hc, http.MethodGet, gw.url+"/v1/models/"+m, "", nil)
		var card struct{ ID string }
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &card) != nil || card.ID != m {
			t.Errorf("GET /v1/models/%s = %d %s, want 200 with that id", m, resp.StatusCode, b)
		}
		params := openai.ChatCompletionNewParams{Model: m, MaxTokens: openai.Int(4),
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("which model are you?")}}
		got, err := gwc.Chat.Completions.New(reqCtx(t), params)
		if err != nil {
			t.Errorf("chat(model %s) via llmgate: %v", m, err)
			continue
		}
		want, err := simc.Chat.Completions.New(reqCtx(t), params)
		if err != nil {
			t.Fatalf("chat(model %s) on llmsim: %v", m, err)
		}
		if got.Model != m || got.Choices[0].Message.Content != want.Choices[0].Message.Content {
			t.Errorf("chat(model %s) via llmgate = model %q %q, want %q as llmsim answers", m, got.Model,
				got.Choices[0].Message.Content, want.Choices[0].Message.Content)
		}
	}
	resp, b := do(t, hc, http.MethodGet, gw.url+"/v1/models/no-such-model", "", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /v1/models/no-such-model = %d, want 404:\n%s", resp.StatusCode, b)
	} else if code := checkErrorBody(t, b); code != "model_not_found" {
		t.Errorf("GET /v1/models/no-such-model error.code = %q, want model_not_found", code)
	}

	u, err := url.Parse(sim.url)
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"backend": u.Host}
	if up, found := metricValue(scrape(t, gw.admin+"/metrics"), "llmgate_backend_up", labels); !found || up != 1 {
		t.Errorf("llmgate_backend_up%v = %v (found %v), want 1", labels, up, found)
	}
}
