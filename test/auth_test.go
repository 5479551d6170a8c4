package test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// TestClientKeyNotForwarded checks that the client's credentials never reach a backend that
// has no key of its own.
func TestClientKeyNotForwarded(t *testing.T) {
	t.Parallel()
	gw := startSharedGateway(t, "")
	id := newRequestID(t)
	c := sdkClient(t, gw.url, option.WithHeader("X-Request-Id", id),
		option.WithHeader("X-Api-Key", clientKey), option.WithHeader("Api-Key", clientKey))
	_, err := c.Chat.Completions.New(reqCtx(t), openai.ChatCompletionNewParams{Model: simModel,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")}, MaxTokens: openai.Int(2)})
	if err != nil {
		t.Fatalf("chat with Authorization: Bearer %s: %v", clientKey, err)
	}
	up := simRequest(t, suite.sim, id)
	if v := up.Headers.Values("Authorization"); len(v) > 0 {
		t.Errorf("llmsim received Authorization %q, want none (the client's key stays at the gateway)", v)
	}
	for name, vv := range up.Headers {
		for _, v := range vv {
			if strings.Contains(v, clientKey) {
				t.Errorf("llmsim received the client's key in header %s: %q", name, v)
			}
		}
	}
}

// TestBackendKey checks that a backend with api_key_env gets that key, from llmgate's
// environment, in place of the client's.
func TestBackendKey(t *testing.T) {
	t.Parallel()
	const backendKey = "backend-key-5f3a91"
	sim := startSim(t, "-model", simModel, "-ttft", "1ms", "-itl", "1ms", "-api-key", backendKey)
	hc := newHTTPClient(t)
	body := `{"model":"sim-model","messages":[{"role":"user","content":"hi"}],"max_tokens":2}`
	if resp, b := do(t, hc, http.MethodPost, sim.url+"/v1/chat/completions", body,
		headers("Authorization", "Bearer "+clientKey)); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("llmsim -api-key answered the client's key with %d, want 401 (test setup):\n%s", resp.StatusCode, b)
	}

	cfg := `listen: "127.0.0.1:0"
admin_listen: "127.0.0.1:0"
backends:
  - name: keyed
    url: "` + sim.url + `"
    api_key_env: E2E_BACKEND_KEY
models:
  - name: sim-model
    backends: [keyed]
`
	gw := startGatewayConfig(t, cfg, []string{"E2E_BACKEND_KEY=" + backendKey})
	for _, stream := range []bool{false, true} {
		id := newRequestID(t)
		b := body
		if stream {
			b = strings.Replace(body, `"max_tokens":2`, `"max_tokens":2,"stream":true`, 1)
		}
		resp, got := do(t, hc, http.MethodPost, gw.url+"/v1/chat/completions", b,
			headers("Authorization", "Bearer "+clientKey, "X-Request-Id", id))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s through a keyed backend = %d, want 200:\n%s", b, resp.StatusCode, got)
		}
		up := simRequest(t, sim, id)
		if v := up.Headers.Values("Authorization"); len(v) != 1 || v[0] != "Bearer "+backendKey {
			t.Errorf("llmsim received Authorization %q, want exactly [\"Bearer %s\"]", v, backendKey)
		}
	}
	if logs := gw.logs(); strings.Contains(logs, backendKey) || strings.Contains(logs, clientKey) {
		t.Errorf("llmgate's log contains a key:\n%s", logs)
	}
}
