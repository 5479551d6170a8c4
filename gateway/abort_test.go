package gateway

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// panicWriter is a ResponseWriter that panics on its second body write, after the status
// line and the first event went out: a panic once a response has begun.
type panicWriter struct {
	*httptest.ResponseRecorder
	writes int
}

func (p *panicWriter) Write(b []byte) (int, error) {
	if p.writes++; p.writes == 2 {
		panic("boom mid-stream")
	}
	return p.ResponseRecorder.Write(b)
}

// TestPanicMidStreamAborts: a panic after the response headers went out must cut the
// connection (http.ErrAbortHandler), never append an error body to a 200 that then looks whole;
// the request is counted as internal with the status the client saw, and the panic is logged
// with the request's ID.
func TestPanicMidStreamAborts(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, sseUpstream(t, helloChunk, worldChunk, usageChunk, doneEvent).URL)
	w := &panicWriter{ResponseRecorder: httptest.NewRecorder()}
	req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(streamBody))
	req.Header.Set("X-Request-Id", "req-panic-1")
	var recovered any
	func() {
		defer func() { recovered = recover() }()
		f.g.publicRoutes().ServeHTTP(w, req)
	}()
	if recovered != http.ErrAbortHandler { //nolint:errorlint // comparing the panic value
		t.Errorf("ServeHTTP panicked with %v, want http.ErrAbortHandler", recovered)
	}
	if body := w.Body.String(); strings.Contains(body, `"error"`) {
		t.Errorf("body after a mid-stream panic = %q, want no error JSON appended", body)
	}
	if v := f.requests(t, "200", "internal"); v != 1 {
		t.Errorf("requests_total{200,internal} = %v, want 1", v)
	}
	if logs := f.logs.String(); !strings.Contains(logs, `"msg":"handler panic","request_id":"req-panic-1"`) {
		t.Errorf("panic log lacks the request ID:\n%s", logs)
	}
}

// TestPanicLogHasRequestID: a panic outside the proxy handlers is logged with the request ID.
func TestPanicLogHasRequestID(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, newRecorder(t, http.StatusOK, chatAnswer).URL)
	f.g.models.Store(nil) // makes /v1/models panic
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/v1/models", nil)
	req.Header.Set("X-Request-Id", "req-panic-2")
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Errorf("status = %d, want 500", resp.StatusCode)
	}
	if logs := f.logs.String(); !strings.Contains(logs, `"request_id":"req-panic-2"`) {
		t.Errorf("panic log lacks the request ID:\n%s", logs)
	}
}

// TestHalfClosedClientGetsNoSuccess: a client that half-closes its connection after sending
// its request must not get a 200 with an empty body (an SDK could take it for an answer); the
// gateway closes the connection without a response and logs 499.
func TestHalfClosedClientGetsNoSuccess(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // so that the server sees the gateway hang up
		<-r.Context().Done()               // a long generation, cancelled by the gateway
	}))
	t.Cleanup(up.Close)
	f := newFixture(t, nil, up.URL)
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	_, err = io.WriteString(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"+
		"Content-Length: "+itoa(len(body))+"\r\n\r\n"+body)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, _ := io.ReadAll(bufio.NewReader(conn))
	if len(got) != 0 {
		t.Errorf("half-closed client got %q, want the connection closed without a response", got)
	}
	waitFor(t, "the request to be recorded", func() bool { return f.requests(t, "499", "client_cancelled") == 1 })
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestClientValuesAreClipped: a huge value the client sent never comes back whole in an
// error body or the access log.
func TestClientValuesAreClipped(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, newRecorder(t, http.StatusOK, chatAnswer).URL)
	huge := strings.Repeat("x", 200<<10)
	for _, body := range []string{
		`{"model":"m","stream":"` + huge + `"}`,
		`{"model":"m","stream_options":"` + huge + `"}`,
		`{"model":"` + huge + `"}`,
	} {
		resp := f.post(t, "/v1/chat/completions", body)
		got := readAll(t, resp.Body)
		if resp.StatusCode/100 != 4 || len(got) > 2048 {
			t.Errorf("answer to a 200 KB value: %d with %d bytes, want a 4xx under 2 KB", resp.StatusCode, len(got))
		}
	}
	resp := f.post(t, "/"+huge, "{}")
	if got := readAll(t, resp.Body); resp.StatusCode != 404 || len(got) > 2048 {
		t.Errorf("answer to a 200 KB path: %d with %d bytes, want a 404 under 2 KB", resp.StatusCode, len(got))
	}
	for _, line := range strings.Split(f.logs.String(), "\n") {
		if len(line) > 4096 {
			t.Errorf("a log line is %d bytes long: %.200s…", len(line), line)
		}
	}
}

// failWriter is a ResponseWriter whose body writes fail from the second on, as writes to a
// client that went away do.
type failWriter struct {
	*httptest.ResponseRecorder
	writes int
}

func (f *failWriter) Write(b []byte) (int, error) {
	if f.writes++; f.writes >= 2 {
		return 0, errors.New("write: broken pipe")
	}
	return f.ResponseRecorder.Write(b)
}

// TestFailedClientWriteAborts: once a client write fails, the handler aborts the connection
// (http.ErrAbortHandler) instead of returning as if the answer had ended, for streams and
// for buffered answers alike.
func TestFailedClientWriteAborts(t *testing.T) {
	t.Parallel()
	big := `{"x":"` + strings.Repeat("a", 200<<10) + `"}` // more than one write step
	for name, c := range map[string]struct{ upstream, body string }{
		"stream":   {sseUpstream(t, helloChunk, worldChunk, usageChunk, doneEvent).URL, streamBody},
		"buffered": {newRecorder(t, http.StatusOK, big).URL, `{"model":"m"}`},
	} {
		f := newFixture(t, nil, c.upstream)
		w := &failWriter{ResponseRecorder: httptest.NewRecorder()}
		var recovered any
		func() {
			defer func() { recovered = recover() }()
			f.g.publicRoutes().ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(c.body)))
		}()
		if recovered != http.ErrAbortHandler { //nolint:errorlint // comparing the panic value
			t.Errorf("%s: after a failed client write the handler ended with %v, want http.ErrAbortHandler", name, recovered)
		}
		if v := f.requests(t, "499", "client_cancelled"); v != 1 {
			t.Errorf("%s: requests_total{499,client_cancelled} = %v, want 1", name, v)
		}
	}
}
