package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestMalformedAnswerCountsAsUpstreamError: a 200 whose body is not JSON is relayed as sent
// but counted as the backend's failure, as a malformed stream event is.
func TestMalformedAnswerCountsAsUpstreamError(t *testing.T) {
	t.Parallel()
	cut := `{"id":"x","object":"chat.completion","choices":[{"message":{"content":"hel`
	f := newFixture(t, nil, newRecorder(t, http.StatusOK, cut).URL)
	if got := readAll(t, f.post(t, "/v1/chat/completions", `{"model":"m"}`).Body); got != cut {
		t.Errorf("client got %q, want the backend's body as sent", got)
	}
	f.srv.Close()
	if v := f.requests(t, "200", "upstream_error"); v != 1 {
		t.Errorf("requests_total{200,upstream_error} = %v, want 1", v)
	}
}

// TestModelIDPercentEncoded: GET /v1/models/{id} finds an org/name model however its slash
// or letters are escaped.
func TestModelIDPercentEncoded(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *Config) { c.Models[0].Name = "org/name" }, newRecorder(t, http.StatusOK, chatAnswer).URL)
	for _, path := range []string{"org/name", "org%2Fname", "org%2fname", "%6Frg/name"} {
		resp, err := f.srv.Client().Get(f.srv.URL + "/v1/models/" + path)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(body, `"id":"org/name"`) {
			t.Errorf("GET /v1/models/%s = %d %s, want 200 with id org/name", path, resp.StatusCode, body)
		}
	}
}

// TestTraceHeadersNeverPassedRaw: the client's traceparent and tracestate reach the backend
// only as the valid trace context they carry: an invalid traceparent, or a tracestate with no
// trace, is dropped; with tracing on, a new trace carries no foreign tracestate.
func TestTraceHeadersNeverPassedRaw(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	for _, traced := range []bool{false, true} {
		up := newRecorder(t, http.StatusOK, chatAnswer)
		f := newFixture(t, nil, up.URL)
		if traced {
			f = newTracedFixture(t, nil, tp, up.URL)
		}
		for _, hdr := range [][]string{
			{"Traceparent", "00-zzzz-garbage", "Tracestate", "vendor=secret"},
			{"Traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "Tracestate", "vendor=secret"},
			{"Tracestate", "vendor=secret"},
		} {
			f.post(t, "/v1/chat/completions", `{"model":"m"}`, hdr...)
			tp := up.header.Get("Traceparent")
			if ts := up.header.Get("Tracestate"); ts != "" {
				t.Errorf("traced=%v, sent %q: upstream tracestate = %q, want none", traced, hdr, ts)
			}
			if traced != (tp != "") || strings.Contains(tp, "zzzz") || strings.Contains(tp, "-00000000000000000000000000000000-") {
				t.Errorf("traced=%v, sent %q: upstream traceparent = %q, want a new trace only when traced", traced, hdr, tp)
			}
		}
	}
}

// TestLookAlikeForwardingHeadersDropped: spellings of the forwarding headers that some
// servers read as the same header never reach the backend.
func TestLookAlikeForwardingHeadersDropped(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, http.StatusOK, chatAnswer)
	f := newFixture(t, nil, up.URL)
	spoofed := []string{"X-Forwarded_For", "X-Real_IP", "Client-IP", "True-Client-IP", "X-Client-IP",
		"X-Cluster-Client-IP", "X-Original-Forwarded-For"}
	var hdr []string
	for _, h := range spoofed {
		hdr = append(hdr, h, "7.7.7.7")
	}
	f.post(t, "/v1/chat/completions", `{"model":"m"}`, hdr...)
	for k, vv := range up.header {
		if strings.Contains(strings.Join(vv, ","), "7.7.7.7") {
			t.Errorf("upstream got %s: %q, a spoofed client address", k, vv)
		}
	}
	if got := up.header.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("upstream X-Forwarded-For = %q, want the peer 127.0.0.1", got)
	}
}

// TestUnknownMethodOnUnknownPath: a method no route has, on a path no route has, is a 404,
// not a 405 with an empty Allow; the admin listener serves HEAD like the public one.
func TestUnknownMethodOnUnknownPath(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, newRecorder(t, http.StatusOK, chatAnswer).URL)
	admin := httptest.NewServer(f.g.adminRoutes())
	defer admin.Close()
	cases := []struct {
		base, method, path string
		want               int
		allow              string
	}{
		{f.srv.URL, "FOO", "/nope", 404, ""},
		{f.srv.URL, "FOO", "/healthz", 405, "GET, HEAD"},
		{f.srv.URL, http.MethodGet, "/v1/chat/completions", 405, "POST"},
		{admin.URL, "FOO", "/nope", 404, ""},
		{admin.URL, http.MethodHead, "/healthz", 200, ""},
		{admin.URL, http.MethodPost, "/healthz", 405, "GET, HEAD"},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, c.base+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want || resp.Header.Get("Allow") != c.allow {
			t.Errorf("%s %s = %d Allow %q, want %d Allow %q", c.method, c.path, resp.StatusCode,
				resp.Header.Get("Allow"), c.want, c.allow)
		}
	}
}

// TestRunCutRequestGets503: a non-streaming request still waiting on its backend when
// shutdown_grace runs out gets the 503 it is logged with, not a closed connection.
func TestRunCutRequestGets503(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			_, _ = io.Copy(io.Discard, r.Body) // so that the server sees the gateway hang up
			select {
			case arrived <- struct{}{}:
			default:
			}
			<-r.Context().Done()
		}
	}))
	t.Cleanup(up.Close)
	_, addr, _, _, stop, done := startRun(t, up.URL, func(c *Config) { c.ShutdownGrace = Duration(200 * time.Millisecond) })
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	result := make(chan int, 1)
	go func() {
		resp, err := client.Post("http://"+addr+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m"}`))
		if err != nil {
			result <- -1
			return
		}
		resp.Body.Close()
		result <- resp.StatusCode
	}()
	<-arrived
	stop()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	if got := <-result; got != http.StatusServiceUnavailable {
		t.Errorf("client got %d, want 503", got)
	}
}

// TestUnreadBodiesDoNotHoldConnections: a request answered without its body being read (an
// unknown route, a wrong method, an unsupported encoding) whose client stalls mid-body gets
// its answer at once and the connection closed soon after, instead of net/http waiting for
// the rest of the body with no deadline.
func TestUnreadBodiesDoNotHoldConnections(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, newRecorder(t, http.StatusOK, chatAnswer).URL)
	for _, c := range []struct {
		request string
		want    int
	}{
		{"POST /v1/nope HTTP/1.1\r\n", 404},
		{"PUT /v1/chat/completions HTTP/1.1\r\n", 405},
		{"POST /v1/chat/completions HTTP/1.1\r\nContent-Encoding: br\r\n", 415},
	} {
		conn, err := net.Dial("tcp", addrOf(f))
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		start := time.Now()
		if _, err := io.WriteString(conn, c.request+"Host: gw\r\nContent-Length: 100000\r\n\r\n{\"m"); err != nil {
			t.Fatal(err)
		}
		resp, _ := readResponse(t, conn)
		_, err = io.ReadAll(conn) // the server closes the connection
		conn.Close()
		if resp.StatusCode != c.want || err != nil || time.Since(start) > 5*time.Second {
			t.Errorf("%q with a stalled body: %d, then %v after %s; want %d and the connection closed within seconds",
				c.request, resp.StatusCode, err, time.Since(start), c.want)
		}
	}
}

// TestAnnouncedBodyReservedAsItArrives: a client that announces a large body and sends a
// byte holds a little of body_memory_bytes, not the size it announced.
func TestAnnouncedBodyReservedAsItArrives(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, newRecorder(t, http.StatusOK, chatAnswer).URL)
	rawUpload(t, addrOf(f), 32<<20, "{")
	waitFor(t, "the upload's reservation", func() bool { return f.g.intake.reserved() > 0 })
	if n := f.g.intake.reserved(); n > 64<<10 {
		t.Errorf("a stalled 32 MiB upload reserved %d bytes, want at most 64 KiB", n)
	}
}
