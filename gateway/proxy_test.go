package gateway

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// recorder is a fake upstream that records what it received and answers with a fixed JSON body.
type recorder struct {
	*httptest.Server
	header http.Header
	body   string
}

func newRecorder(t *testing.T, status int, answer string) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec.header, rec.body = r.Header.Clone(), string(b)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream-Own", "kept")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(rec.Close)
	return rec
}

const chatAnswer = `{"id":"x","object":"chat.completion","model":"up-m","choices":[{"index":0,"message":{"role":"assistant","content":" hello world"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}`

func TestNonStreamForwardsBodyAndHeaders(t *testing.T) { // not parallel: t.Setenv
	up := newRecorder(t, http.StatusOK, chatAnswer)
	t.Setenv("LLMGATE_TEST_KEY", "backend-secret")
	f := newFixture(t, func(c *Config) { c.Backends[0].APIKeyEnv = "LLMGATE_TEST_KEY" }, up.URL)
	body := `{"model":"m", "messages":[{"role":"user","content":"h\u00e9"}],"guided_json":{"a":[1,2]},"chat_template_kwargs":{"x":true}}`
	resp := f.post(t, "/v1/chat/completions", body,
		"Authorization", "Bearer client-secret", "Connection", "X-Hop", "X-Hop", "1",
		"X-Request-Id", "req-123", "OpenAI-Organization", "org-1")
	got := readAll(t, resp.Body)
	if got != chatAnswer {
		t.Errorf("client body = %s, want the upstream's unchanged", got)
	}
	if want := strings.Replace(body, `"model":"m"`, `"model":"up-m"`, 1); up.body != want {
		t.Errorf("upstream body:\n got %s\nwant %s (only model renamed)", up.body, want)
	}
	checks := []struct{ name, got, want string }{
		{"upstream Authorization", up.header.Get("Authorization"), "Bearer backend-secret"},
		{"upstream X-Hop (named by Connection)", up.header.Get("X-Hop"), ""},
		{"upstream X-Request-Id", up.header.Get("X-Request-Id"), "req-123"},
		{"upstream OpenAI-Organization", up.header.Get("OpenAI-Organization"), "org-1"},
		{"response X-Request-Id", resp.Header.Get("X-Request-Id"), "req-123"},
		{"response X-LLMGate-Backend", resp.Header.Get("X-LLMGate-Backend"), "b0"},
		{"response X-Upstream-Own", resp.Header.Get("X-Upstream-Own"), "kept"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if st := resp.Header.Get("Server-Timing"); !strings.HasPrefix(st, "gateway;dur=") {
		t.Errorf("Server-Timing = %q", st)
	}
	f.srv.Close()
	if v := f.metric(t, "llmgate_tokens_total", map[string]string{"model": "m", "type": "output", "source": "upstream"}); v != 2 {
		t.Errorf("output tokens = %v, want 2", v)
	}
	if strings.Contains(f.logs.String(), "client-secret") || strings.Contains(f.logs.String(), "h\\u00e9") {
		t.Errorf("log leaks a key or prompt: %s", f.logs.String())
	}
}

func TestUpstreamErrorReachesClientUnchanged(t *testing.T) {
	t.Parallel()
	const answer = `{"error":{"message":"max_tokens too large","type":"BadRequestError","param":"max_tokens","code":400}}`
	for _, status := range []int{400, 429, 500} {
		up := newRecorder(t, status, answer)
		f := newFixture(t, nil, up.URL)
		resp := f.post(t, "/v1/chat/completions", `{"model":"m"}`)
		if got := readAll(t, resp.Body); resp.StatusCode != status || got != answer {
			t.Errorf("upstream %d: client got %d %s, want it unchanged", status, resp.StatusCode, got)
		}
	}
}

func TestGatewayErrors(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, http.StatusOK, chatAnswer)
	closed := closedURL(t)
	cases := []struct {
		name     string
		upstream string
		body     string
		status   int
		code     string
		param    string
	}{
		{"bad json", up.URL, `{"model":`, 400, "", ""},
		{"missing model", up.URL, `{"messages":[]}`, 400, "", "model"},
		{"unknown model", up.URL, `{"model":"nope"}`, 404, "model_not_found", "model"},
		{"too large", up.URL, `{"model":"m","pad":"` + strings.Repeat("x", 2048) + `"}`, 413, "request_too_large", ""},
		{"unreachable", closed, `{"model":"m"}`, 502, "upstream_unreachable", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(cfg *Config) { cfg.MaxBodyBytes = 1024 }, c.upstream)
			resp := f.post(t, "/v1/chat/completions", c.body)
			body := readAll(t, resp.Body)
			if resp.StatusCode != c.status {
				t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, c.status, body)
			}
			e := gjson.Get(body, "error")
			if !e.Get("message").Exists() || !e.Get("type").Exists() || !e.Get("param").Exists() || !e.Get("code").Exists() {
				t.Errorf("body %s is not OpenAI's error shape", body)
			}
			if got := e.Get("code").String(); got != c.code {
				t.Errorf("error.code = %q, want %q", got, c.code)
			}
			if got := e.Get("param").String(); got != c.param {
				t.Errorf("error.param = %q, want %q", got, c.param)
			}
		})
	}
}

func TestRetriesAnotherBackendWhenDialFails(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, http.StatusOK, chatAnswer)
	f := newFixture(t, nil, closedURL(t), up.URL)
	for i := range 3 {
		resp := f.post(t, "/v1/chat/completions", `{"model":"m"}`)
		if resp.StatusCode != 200 || resp.Header.Get("X-LLMGate-Backend") != "b1" {
			t.Errorf("request %d: %d from %q, want 200 from b1", i, resp.StatusCode, resp.Header.Get("X-LLMGate-Backend"))
		}
	}
	if f.g.backends[0].up.Load() {
		t.Errorf("backend b0 still marked up after a refused dial")
	}
}

func TestNoHealthyBackendIs503(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, http.StatusOK, chatAnswer)
	f := newFixture(t, nil, up.URL)
	f.g.backends[0].up.Store(false)
	resp := f.post(t, "/v1/chat/completions", `{"model":"m"}`)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("status %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if r := get(t, f.srv.URL+"/readyz"); r != 503 {
		t.Errorf("/readyz = %d with no healthy backend, want 503", r)
	}
}

func TestReadinessAndDraining(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, http.StatusOK, chatAnswer)
	f := newFixture(t, nil, up.URL)
	if r := get(t, f.srv.URL+"/readyz"); r != 200 {
		t.Errorf("/readyz = %d, want 200", r)
	}
	f.g.notReady.Store(true)
	if r := get(t, f.srv.URL+"/readyz"); r != 503 {
		t.Errorf("/readyz after shutdown began = %d, want 503", r)
	}
	if r := f.post(t, "/v1/chat/completions", `{"model":"m"}`); r.StatusCode != 200 {
		t.Errorf("request during shutdown_delay = %d, want 200 (still served)", r.StatusCode)
	}
	f.g.draining.Store(true)
	if r := get(t, f.srv.URL+"/readyz"); r != 503 {
		t.Errorf("/readyz while draining = %d, want 503", r)
	}
	if r := f.post(t, "/v1/chat/completions", `{"model":"m"}`); r.StatusCode != 503 {
		t.Errorf("new request while draining = %d, want 503", r.StatusCode)
	}
	if r := get(t, f.srv.URL+"/healthz"); r != 200 {
		t.Errorf("/healthz while draining = %d, want 200 (alive)", r)
	}
}

func TestModelsAndNoMetricsOnPublic(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, newRecorder(t, 200, chatAnswer).URL)
	resp, err := f.srv.Client().Get(f.srv.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp.Body)
	resp.Body.Close()
	if ids := gjson.Get(body, "data.#.id").String(); ids != `["m"]` || gjson.Get(body, "object").Str != "list" {
		t.Errorf("/v1/models = %s, want a list of [m]", body)
	}
	cases := map[string]int{"/v1/models/m": 200, "/v1/models/nope": 404, "/metrics": 404, "/admin/state": 404}
	for path, want := range cases {
		if got := get(t, f.srv.URL+path); got != want {
			t.Errorf("GET %s = %d, want %d", path, got, want)
		}
	}
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// closedURL returns the URL of a loopback port that nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestRecoverPanics(t *testing.T) {
	t.Parallel()
	g := &Gateway{log: discardLogger()}
	h := g.recoverPanics(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil))
	if rec.Code != 500 || gjson.Get(rec.Body.String(), "error.type").Str != "server_error" {
		t.Errorf("after a panic: %d %s, want 500 with an OpenAI error body", rec.Code, rec.Body)
	}
	abort := g.recoverPanics(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }))
	defer func() {
		if v := recover(); v != http.ErrAbortHandler { //nolint:errorlint // comparing the panic value
			t.Errorf("recovered %v, want http.ErrAbortHandler passed on", v)
		}
	}()
	abort.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	t.Errorf("ErrAbortHandler was swallowed")
}

// TestPanicIsCountedAsInternalError: a panic on the request path is recorded as a 500, not as
// the 200/ok a request starts out as.
func TestPanicIsCountedAsInternalError(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, newRecorder(t, http.StatusOK, chatAnswer).URL)
	f.g.backends[0].base = nil // makes sending upstream panic
	resp := f.post(t, "/v1/chat/completions", `{"model":"m"}`)
	if resp.StatusCode != 500 {
		t.Errorf("status = %d, want 500", resp.StatusCode)
	}
	f.srv.Close()
	if v := f.requests(t, "500", "internal"); v != 1 {
		t.Errorf("requests_total{500,internal} = %v, want 1", v)
	}
	if v := f.requests(t, "200", "ok"); v != -1 {
		t.Errorf("requests_total{200,ok} = %v, want no such series", v)
	}
	if n := f.g.backends[0].inflight.Load(); n != 0 {
		t.Errorf("backend in flight after the panic = %d, want 0", n)
	}
	if !strings.Contains(f.logs.String(), "handler panic") || !strings.Contains(f.logs.String(), "gateway.(*backend).url") {
		t.Errorf("panic log lacks the original stack:\n%s", f.logs.String())
	}
}

func TestBackendAtCapIsBusyNotDown(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *Config) { c.Backends[0].MaxConcurrency = 1 }, newRecorder(t, http.StatusOK, chatAnswer).URL)
	f.g.backends[0].inflight.Store(1) // its one slot is taken
	resp := f.post(t, "/v1/chat/completions", `{"model":"m"}`)
	body := readAll(t, resp.Body)
	if resp.StatusCode != 503 || gjson.Get(body, "error.code").Str != "backends_busy" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("at max_concurrency: %d %s, want 503 backends_busy with Retry-After", resp.StatusCode, body)
	}
	f.g.backends[0].inflight.Store(0)
	if resp := f.post(t, "/v1/chat/completions", `{"model":"m"}`); resp.StatusCode != 200 {
		t.Errorf("with a free slot: %d, want 200", resp.StatusCode)
	}
	f.srv.Close() // waits for the handler, which releases the slot after the answer went out
	if n := f.g.backends[0].inflight.Load(); n != 0 {
		t.Errorf("in flight after the request = %d, want 0", n)
	}
}

func TestHeadOnGetRoutes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, newRecorder(t, http.StatusOK, chatAnswer).URL)
	for _, path := range []string{"/healthz", "/readyz", "/v1/models"} {
		resp, err := http.Head(f.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("HEAD %s = %d, want 200", path, resp.StatusCode)
		}
	}
}
