package test

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/otlptest"
)

// TestCanarySecretsLeakNowhere sends requests whose prompt, API key and headers carry unique
// secrets through an llmgate with every output on: the access log, the audit log, traces
// exported over OTLP, and the admin listener's /metrics and profiler. Afterwards no secret
// appears in any of them; the audit log holds the prompt with the secrets redacted.
func TestCanarySecretsLeakNowhere(t *testing.T) {
	t.Parallel()
	rcv := otlptest.Start(t)
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	cfg := gatewayConfig(suite.sim.url, fmt.Sprintf(`telemetry:
  pprof: true
  audit:
    enabled: true
    path: %q
`, auditPath))
	gw := startGatewayConfig(t, cfg, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + rcv.HTTPURL(),
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf", "OTEL_TRACES_EXPORTER=otlp", "OTEL_TRACES_SAMPLER=always_on",
		"OTEL_SDK_DISABLED=false", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="})
	tag := strings.ToLower(rand.Text()[:16])
	secrets := map[string]string{
		"prompt key":    "sk-canary" + tag + "PromptKeyPart0123456789",
		"prompt e-mail": "canary." + tag + "@example.com",
		"api key":       "sk-canary" + tag + "ClientKeyPart987654321",
		"header":        "canary-header-" + tag,
		"cookie":        "canary-cookie-" + tag,
	}
	hc := newHTTPClient(t)
	prompt := "My key is " + secrets["prompt key"] + " and my mail " + secrets["prompt e-mail"] + "; say hi."
	for _, stream := range []bool{false, true} {
		body := fmt.Sprintf(`{"model":%q,"stream":%v,"max_tokens":4,"messages":[{"role":"user","content":%q}]}`,
			simModel, stream, prompt)
		resp, b := do(t, hc, http.MethodPost, gw.url+"/v1/chat/completions", body, headers(
			"Authorization", "Bearer "+secrets["api key"], "X-Api-Key", secrets["api key"],
			"X-Canary", secrets["header"], "Cookie", "session="+secrets["cookie"]))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream=%v: %d %s", stream, resp.StatusCode, b)
		}
	}
	// Admin answers, taken while llmgate runs.
	admin := map[string]string{}
	for _, path := range []string{"/metrics", "/healthz", "/debug/pprof/cmdline", "/debug/pprof/"} {
		resp, b := do(t, hc, http.MethodGet, gw.admin+path, "", nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET admin %s = %d", path, resp.StatusCode)
		}
		admin["admin "+path] = string(b)
	}
	// SIGTERM flushes spans and drains the logs.
	if err := gw.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, ok := gw.waitExit(30 * time.Second); !ok || code != 0 {
		t.Fatalf("llmgate after SIGTERM: exited %v, code %d", ok, code)
	}
	outputs := admin
	outputs["llmgate's log"] = gw.logs()
	audit, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	outputs["audit log"] = string(audit)
	spans := rcv.Spans()
	outputs["spans"] = fmt.Sprintf("%+v", spans)
	if len(spans) < 4 {
		t.Errorf("receiver got %d spans, want a server and a client span per request", len(spans))
	}
	for where, text := range outputs {
		for what, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("the %s secret %q appears in the %s", what, secret, where)
			}
		}
	}
	if strings.Count(string(audit), "[REDACTED:key]") < 2 || strings.Count(string(audit), "[REDACTED:email]") < 2 ||
		!strings.Contains(string(audit), "say hi") || strings.Contains(string(audit), `"completion":""`) {
		t.Errorf("audit log lacks the redacted prompts or the completions:\n%s", audit)
	}
	if !strings.Contains(gw.logs(), `"msg":"request"`) {
		t.Errorf("llmgate's log has no access-log line:\n%s", gw.logs())
	}
}
