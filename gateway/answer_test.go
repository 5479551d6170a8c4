package gateway

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// bigAnswer is a backend answering n bytes of JSON, with Content-Length or chunked.
func bigAnswer(t *testing.T, n int, chunked bool) string {
	t.Helper()
	body := `{"x":"` + strings.Repeat("a", n-8) + `"}`
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		if !chunked {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		for b := body; b != ""; {
			k := min(len(b), 4096)
			if _, err := io.WriteString(w, b[:k]); err != nil {
				return
			}
			b = b[k:]
		}
	}))
	t.Cleanup(s.Close)
	return s.URL
}

func TestAnswerOverMaxResponseBytes(t *testing.T) {
	t.Parallel()
	for _, chunked := range []bool{false, true} {
		f := newFixture(t, func(c *Config) { c.MaxResponseBytes = 100 << 10 }, bigAnswer(t, 200<<10, chunked))
		resp := f.post(t, "/v1/chat/completions", `{"model":"m"}`)
		body := readAll(t, resp.Body)
		if resp.StatusCode != 502 || gjson.Get(body, "error.code").Str != "upstream_response_too_large" {
			t.Errorf("chunked=%v: 200 KB answer over a 100 KB cap: %d %s, want 502 upstream_response_too_large",
				chunked, resp.StatusCode, body)
		}
		if !f.g.answers.TryAcquire(f.g.cfg.ResponseMemoryBytes) {
			t.Errorf("chunked=%v: the answers budget was not given back", chunked)
		}
	}
	f := newFixture(t, func(c *Config) { c.MaxResponseBytes = 300 << 10 }, bigAnswer(t, 200<<10, true))
	if resp := f.post(t, "/v1/chat/completions", `{"model":"m"}`); resp.StatusCode != 200 || len(readAll(t, resp.Body)) != 200<<10 {
		t.Errorf("answer under the cap: %d, want 200 with the whole body", resp.StatusCode)
	}
}

// TestAnswersBudgetFullPassesThrough: with the answers budget in use, an answer is relayed
// as it arrives instead of being held, so the backend's finished work is not thrown away;
// its usage still counts, read from the answer's tail, and max_response_bytes still holds.
func TestAnswersBudgetFullPassesThrough(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *Config) { c.MaxResponseBytes, c.ResponseMemoryBytes = 1<<20, 1<<20 },
		newRecorder(t, http.StatusOK, chatAnswer).URL)
	if !f.g.answers.TryAcquire(1 << 20) { // other answers hold the whole budget
		t.Fatal("budget not free at start")
	}
	resp := f.post(t, "/v1/chat/completions", `{"model":"m"}`)
	if body := readAll(t, resp.Body); resp.StatusCode != 200 || body != chatAnswer {
		t.Errorf("with the budget full: %d %s, want 200 and the answer as sent", resp.StatusCode, body)
	}
	f.srv.Close()
	if v := f.metric(t, "llmgate_tokens_total", map[string]string{"type": "output", "source": "upstream"}); v != 2 {
		t.Errorf("output tokens from the passed-through answer = %v, want 2 from its usage", v)
	}

	big := newFixture(t, func(c *Config) { c.MaxResponseBytes, c.ResponseMemoryBytes = 100<<10, 100<<10 },
		bigAnswer(t, 300<<10, true))
	if !big.g.answers.TryAcquire(100 << 10) {
		t.Fatal("budget not free at start")
	}
	resp = big.post(t, "/v1/chat/completions", `{"model":"m"}`)
	if _, err := io.ReadAll(resp.Body); resp.StatusCode != 200 || err == nil {
		t.Errorf("a 300 KB answer over a 100 KB cap, passed through: %d, read error %v; want the 200 cut", resp.StatusCode, err)
	}
	big.srv.Close()
	if v := big.requests(t, "200", "upstream_error"); v != 1 {
		t.Errorf("requests_total{200,upstream_error} = %v, want 1", v)
	}
}

func TestAnswerTailUsage(t *testing.T) {
	t.Parallel()
	var tail answerTail
	filler := strings.Repeat(`{"x":"`+strings.Repeat("y", 100)+`"},`, 200)
	for _, p := range []string{`{"choices":[`, filler, `{"usage":"fake"}],"usa`, `ge" : {"prompt_tokens":7,"completion_tokens":9}}`} {
		tail.add([]byte(p))
	}
	if u := usageFrom(tail.usage()); !u.ok || u.input != 7 || u.output != 9 {
		t.Errorf("usage from the tail = %+v, want 7 in and 9 out", u)
	}
	if len(tail.b) > 2*answerTailSize {
		t.Errorf("tail holds %d bytes, want at most %d", len(tail.b), 2*answerTailSize)
	}
}

// TestAnswerToClientThatNeverReads: a client that sends its request and never reads the
// answer is cut after chunk_timeout, and the answer's memory goes back to the budget.
func TestAnswerToClientThatNeverReads(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *Config) { c.Upstream.ChunkTimeout = Duration(300 * time.Millisecond) },
		bigAnswer(t, 24<<20, false))
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"model":"m"}`
	if _, err := io.WriteString(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Length: "+
		strconv.Itoa(len(body))+"\r\n\r\n"+body); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stalled write to be cut", func() bool { return f.requests(t, "499", "client_cancelled") == 1 })
	if !f.g.answers.TryAcquire(f.g.cfg.ResponseMemoryBytes) {
		t.Errorf("the answers budget was not given back after the cut")
	}
	if lines := f.logLines(t); len(lines) != 1 || lines[0]["upstream_duration"] == 0.0 || lines[0]["upstream_duration"] == nil {
		t.Errorf("access log of the cut answer = %v, want one line with the backend's duration", lines)
	}
}
