package gateway

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// rawUpload opens a connection to addr and sends the headers of a chat request that announces
// size body bytes, then the first part of the body. The caller decides what happens next.
func rawUpload(t *testing.T, addr string, size int, part string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second)) // a test that would hang fails instead
	if _, err := fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"+
		"Content-Length: %d\r\n\r\n%s", size, part); err != nil {
		t.Fatalf("write upload: %v", err)
	}
	return c
}

// readResponse reads one response from c and returns it with its body.
func readResponse(t *testing.T, c net.Conn) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func addrOf(f *fixture) string { return strings.TrimPrefix(f.srv.URL, "http://") }

// TestBodyReadTimeout: a body that stalls past body_read_timeout gets 408 request_timeout,
// counted as invalid, and its memory is released.
func TestBodyReadTimeout(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, http.StatusOK, chatAnswer)
	f := newFixture(t, func(c *Config) { c.BodyReadTimeout = Duration(150 * time.Millisecond) }, up.URL)
	start := time.Now()
	c := rawUpload(t, addrOf(f), 100, `{"model":"m",`)
	resp, body := readResponse(t, c)
	if resp.StatusCode != http.StatusRequestTimeout || gjson.Get(body, "error.code").Str != "request_timeout" {
		t.Errorf("stalled body: %d %s, want 408 request_timeout", resp.StatusCode, body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stalled body answered after %s, want about body_read_timeout", d)
	}
	waitFor(t, "the 408 to be counted", func() bool {
		return f.metric(t, "llmgate_requests_total", map[string]string{"code": "408", "outcome": "invalid"}) == 1
	})
	if n := f.g.intake.reserved(); n != 0 {
		t.Errorf("body memory reserved after the request = %d, want 0", n)
	}
}

// TestClientGoneMidUpload: a client that hangs up before its body is whole is a 499
// client_cancelled, not a 400.
func TestClientGoneMidUpload(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, http.StatusOK, chatAnswer)
	f := newFixture(t, nil, up.URL)
	for _, reset := range []bool{false, true} {
		c := rawUpload(t, addrOf(f), 1000, `{"model":"m",`)
		waitFor(t, "the upload to be read", func() bool { return f.g.intake.reserved() >= 1000 })
		if reset {
			_ = c.(*net.TCPConn).SetLinger(0) // close with RST
		}
		c.Close()
		waitFor(t, "the upload to end", func() bool { return f.g.intake.reserved() == 0 })
	}
	waitFor(t, "two 499s", func() bool {
		return f.metric(t, "llmgate_requests_total", map[string]string{"code": "499", "outcome": "client_cancelled"}) == 2
	})
	if v := f.metric(t, "llmgate_requests_total", map[string]string{"code": "400"}); v > 0 {
		t.Errorf("requests_total{code=400} = %v, want none", v)
	}
}

// TestBodyMemoryBudget: bodies being read share body_memory_bytes with the rewritten copies
// sent upstream (model "m" is renamed, so each request holds its body about twice); a request
// that does not fit gets 503 memory_budget_full with Retry-After, whether its size is
// announced or it grows while read (chunked), and the budget is whole again once requests end.
func TestBodyMemoryBudget(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, http.StatusOK, chatAnswer)
	f := newFixture(t, func(c *Config) { c.MaxBodyBytes, c.BodyMemoryBytes = 64<<10, 128<<10 }, up.URL)
	stalled := rawUpload(t, addrOf(f), 64<<10, `{"model":"m",`) // holds 64 KiB
	waitFor(t, "the stalled upload's reservation", func() bool { return f.g.intake.reserved() == 64<<10 })

	pad := func(n int) string { return `{"model":"m","x":"` + strings.Repeat("a", n) + `"}` }
	check := func(name string, resp *http.Response, want int) {
		t.Helper()
		body := readAll(t, resp.Body)
		if resp.StatusCode != want {
			t.Errorf("%s: %d %s, want %d", name, resp.StatusCode, body, want)
		}
		if want == 503 && (gjson.Get(body, "error.code").Str != "memory_budget_full" || resp.Header.Get("Retry-After") == "") {
			t.Errorf("%s: %s Retry-After %q, want memory_budget_full with Retry-After", name, body, resp.Header.Get("Retry-After"))
		}
	}
	check("sized, over the budget", f.post(t, "/v1/chat/completions", pad(40<<10)), 503)
	check("sized, within the budget", f.post(t, "/v1/chat/completions", pad(20<<10)), 200)
	chunked := func(body string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/v1/chat/completions", io.MultiReader(strings.NewReader(body)))
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatalf("POST chunked: %v", err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	check("chunked, growing past the budget", chunked(pad(50<<10)), 503)
	check("chunked, within the budget", chunked(pad(10<<10)), 200)
	stalled.Close()
	waitFor(t, "the budget to be whole", func() bool { return f.g.intake.reserved() == 0 })
	check("sized, once the stalled upload is gone", f.post(t, "/v1/chat/completions", pad(40<<10)), 200)
	check("chunked, once the stalled upload is gone", chunked(pad(50<<10)), 200)
	if v := f.metric(t, "llmgate_requests_total", map[string]string{"code": "503", "outcome": "shed"}); v != 2 {
		t.Errorf("requests_total{503,shed} = %v, want 2", v)
	}
	f.srv.Close() // waits for the handlers, which give the memory back once accounted
	if n := f.g.intake.reserved(); n != 0 {
		t.Errorf("reserved after every request = %d, want 0", n)
	}
}

func gzipped(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = io.WriteString(zw, s)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestContentEncoding: a gzip body is decoded within max_body_bytes (a bomb gets 413) and sent
// upstream decoded without Content-Encoding; other encodings get 415.
func TestContentEncoding(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, http.StatusOK, chatAnswer)
	f := newFixture(t, func(c *Config) { c.MaxBodyBytes = 4096 }, up.URL)
	const body = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`

	resp := f.post(t, "/v1/chat/completions", gzipped(t, body), "Content-Encoding", "gzip")
	if got := readAll(t, resp.Body); resp.StatusCode != 200 || got != chatAnswer {
		t.Errorf("gzip body: %d %s, want 200", resp.StatusCode, got)
	}
	want := strings.Replace(body, `"model":"m"`, `"model":"up-m"`, 1)
	if up.body != want || up.header.Get("Content-Encoding") != "" || up.header.Get("Content-Length") != fmt.Sprint(len(want)) {
		t.Errorf("upstream got %q with Content-Encoding %q, Content-Length %q; want the decoded body, no encoding, its length",
			up.body, up.header.Get("Content-Encoding"), up.header.Get("Content-Length"))
	}

	bomb := gzipped(t, `{"model":"m","x":"`+strings.Repeat("a", 10<<20)+`"}`)
	cases := []struct {
		name, body, encoding string
		status               int
		code                 string
	}{
		{"identity", body, "identity", 200, ""},
		{"x-gzip", gzipped(t, body), "X-GZIP", 200, ""},
		{"bomb", bomb, "gzip", 413, "request_too_large"},
		{"corrupt gzip", "\x1f\x8b not really", "gzip", 400, ""},
		{"truncated gzip", gzipped(t, body)[:20], "gzip", 400, ""},
		{"br", body, "br", 415, "unsupported_content_encoding"},
		{"deflate", body, "deflate", 415, "unsupported_content_encoding"},
		{"stacked", gzipped(t, gzipped(t, body)), "gzip, gzip", 415, "unsupported_content_encoding"},
	}
	for _, c := range cases {
		resp := f.post(t, "/v1/chat/completions", c.body, "Content-Encoding", c.encoding)
		got := readAll(t, resp.Body)
		if resp.StatusCode != c.status || gjson.Get(got, "error.code").Str != c.code {
			t.Errorf("%s: %d %s, want %d %q", c.name, resp.StatusCode, got, c.status, c.code)
		}
		if c.status == 415 && !strings.Contains(gjson.Get(got, "error.message").Str, "gzip") {
			t.Errorf("%s: message %q does not name the supported encodings", c.name, got)
		}
	}
	f.srv.Close() // waits for the handlers, which give the memory back once accounted
	if n := f.g.intake.reserved(); n != 0 {
		t.Errorf("reserved after every request = %d, want 0", n)
	}
}

// TestShutdownCutsStalledUpload: a stalled upload does not hold shutdown for shutdown_grace:
// draining cuts it with 503.
func TestShutdownCutsStalledUpload(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, http.StatusOK, chatAnswer)
	g, addr, _, _, stop, done := startRun(t, up.URL, func(c *Config) {
		c.ShutdownGrace = Duration(time.Minute)
		c.BodyReadTimeout = Duration(time.Minute)
	})
	c := rawUpload(t, addr, 1000, `{"model":"m",`)
	waitFor(t, "the upload to be read", func() bool { return g.intake.reserved() == 1000 })
	start := time.Now()
	stop()
	resp, body := readResponse(t, c)
	if resp.StatusCode != 503 || gjson.Get(body, "error.code").Str != "shutting_down" {
		t.Errorf("upload cut by shutdown: %d %s, want 503 shutting_down", resp.StatusCode, body)
	}
	t.Cleanup(func() {
		if err := <-done; err != nil { // Run must end before the test, for goleak
			t.Errorf("Run = %v, want nil", err)
		}
	})
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
		done <- nil
	case <-time.After(10 * time.Second):
		t.Fatalf("shutdown still waiting on a stalled upload after %s", time.Since(start))
	}
}
