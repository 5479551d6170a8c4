package sim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/llmgate/llmgate/tokenizer"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testConfig returns a fast configuration for tests.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.TTFT = time.Millisecond
	cfg.ITL = time.Millisecond
	cfg.MaxTokens = 8
	return cfg
}

// startServer starts a simulator built from testConfig, changed by edit, on a loopback socket.
func startServer(t testing.TB, edit func(*Config)) (*Server, *httptest.Server) {
	t.Helper()
	cfg := testConfig()
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatalf("New(%+v) error = %v", cfg, err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

// newCounter returns a cl100k_base counter.
func newCounter(t testing.TB) *tokenizer.Counter {
	t.Helper()
	c, err := tokenizer.New("cl100k_base")
	if err != nil {
		t.Fatalf("tokenizer.New: %v", err)
	}
	return c
}

// send makes a request with ctx; headers are name, value pairs.
func send(ctx context.Context, t testing.TB, ts *httptest.Server, method, path, body string, headers ...string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatalf("NewRequest(%s %s): %v", method, path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return ts.Client().Do(req)
}

// call makes a request and returns its status, headers and whole body.
func call(t testing.TB, ts *httptest.Server, method, path, body string, headers ...string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := send(t.Context(), t, ts, method, path, body, headers...)
	if err != nil {
		t.Fatalf("%s %s %s: %v", method, path, body, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s %s: read body: %v", method, path, body, err)
	}
	return resp.StatusCode, resp.Header, b
}

// post makes a POST, fails the test unless it answers want, and returns the body.
func post(t testing.TB, ts *httptest.Server, path, body string, want int, headers ...string) []byte {
	t.Helper()
	code, _, b := call(t, ts, http.MethodPost, path, body, headers...)
	if code != want {
		t.Fatalf("POST %s %s (headers %v) status = %d, want %d; body %s", path, body, headers, code, want, b)
	}
	return b
}

// sseReader reads server-sent events one at a time.
type sseReader struct {
	r *bufio.Reader
}

// next returns the data of the next event; io.EOF means the stream ended cleanly between
// events.
func (s *sseReader) next() (string, error) {
	var data []string
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && line == "" && data == nil {
				return "", io.EOF
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if data != nil {
				return strings.Join(data, "\n"), nil
			}
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: "))
		default:
			return "", fmt.Errorf("unexpected SSE line %q", line)
		}
	}
}

// readEvents reads every event of body and the error that ended it (nil for a clean end).
func readEvents(body io.Reader) ([]string, error) {
	r := &sseReader{r: bufio.NewReader(body)}
	var events []string
	for {
		ev, err := r.next()
		if errors.Is(err, io.EOF) {
			return events, nil
		}
		if err != nil {
			return events, err
		}
		events = append(events, ev)
	}
}

// stream POSTs body, checks for a 200 event stream and returns all its events.
func stream(t testing.TB, ts *httptest.Server, path, body string, headers ...string) []string {
	t.Helper()
	resp, err := send(t.Context(), t, ts, http.MethodPost, path, body, headers...)
	if err != nil {
		t.Fatalf("POST %s %s: %v", path, body, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s %s status = %d, want 200; body %s", path, body, resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("POST %s %s Content-Type = %q, want text/event-stream", path, body, ct)
	}
	events, err := readEvents(resp.Body)
	if err != nil {
		t.Fatalf("POST %s %s: read events: %v (events so far %q)", path, body, err, events)
	}
	return events
}

// wireUsage is a usage object as the client sees it.
type wireUsage struct {
	PromptTokens     int  `json:"prompt_tokens"`
	CompletionTokens *int `json:"completion_tokens"`
	TotalTokens      int  `json:"total_tokens"`
}

// wireChunk is a streamed chunk as the client sees it; pointers tell absent from zero.
type wireChunk struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index int `json:"index"`
		Delta *struct {
			Role    *string `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		Text         *string `json:"text"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *wireUsage `json:"usage"`
}

// wireCompletion is a non-streaming completion as the client sees it.
type wireCompletion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message *struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		Text         *string `json:"text"`
		FinishReason string  `json:"finish_reason"`
	} `json:"choices"`
	Usage *wireUsage `json:"usage"`
}

// wireError is an OpenAI error body as the client sees it.
type wireError struct {
	Error *struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    int    `json:"code"`
	} `json:"error"`
}

// decodeJSON decodes data into a new T or fails the test.
func decodeJSON[T any](t testing.TB, data []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decode %s as %T: %v", data, v, err)
	}
	return v
}

// getState reads GET /sim/state.
func getState(t testing.TB, ts *httptest.Server) State {
	t.Helper()
	code, _, b := call(t, ts, http.MethodGet, "/sim/state", "")
	if code != http.StatusOK {
		t.Fatalf("GET /sim/state status = %d, want 200; body %s", code, b)
	}
	return decodeJSON[State](t, b)
}

// waitState polls GET /sim/state until ok accepts it, failing the test after a deadline.
func waitState(t testing.TB, ts *httptest.Server, what string, ok func(State) bool) State {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		st := getState(t, ts)
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("state never reached %s; last %+v", what, st)
		}
		<-tick.C
	}
}
