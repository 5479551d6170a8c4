package sim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestParseOverrides(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		headers map[string]string
		want    overrides
		wantErr bool
	}{
		{name: "none", want: overrides{ttft: ms(50), itl: ms(10)}},
		{name: "timings", headers: map[string]string{"X-Sim-TTFT": "200ms", "X-Sim-ITL": " 5ms "},
			want: overrides{ttft: ms(200), itl: ms(5)}},
		{name: "500", headers: map[string]string{"X-Sim-Fail": "500"}, want: overrides{ttft: ms(50), itl: ms(10), fault: fault{kind: fault500}}},
		{name: "429", headers: map[string]string{"X-Sim-Fail": "429"}, want: overrides{ttft: ms(50), itl: ms(10), fault: fault{kind: fault429}}},
		{name: "malformed", headers: map[string]string{"X-Sim-Fail": "malformed"},
			want: overrides{ttft: ms(50), itl: ms(10), fault: fault{kind: faultMalformed}}},
		{name: "disconnect", headers: map[string]string{"X-Sim-Fail": "disconnect-after=3"},
			want: overrides{ttft: ms(50), itl: ms(10), fault: fault{kind: faultDisconnect, after: 3}}},
		{name: "stall", headers: map[string]string{"X-Sim-Fail": "stall-after=0"},
			want: overrides{ttft: ms(50), itl: ms(10), fault: fault{kind: faultStall}}},
		{name: "error event", headers: map[string]string{"X-Sim-Fail": "error-event-after=12"},
			want: overrides{ttft: ms(50), itl: ms(10), fault: fault{kind: faultErrorEvent, after: 12}}},
		{name: "usage omit", headers: map[string]string{"X-Sim-Usage": "omit"}, want: overrides{ttft: ms(50), itl: ms(10), usage: usageOmit}},
		{name: "usage finish", headers: map[string]string{"X-Sim-Usage": "finish"}, want: overrides{ttft: ms(50), itl: ms(10), usage: usageFinish}},
		{name: "bad TTFT", headers: map[string]string{"X-Sim-TTFT": "fast"}, wantErr: true},
		{name: "negative ITL", headers: map[string]string{"X-Sim-ITL": "-1ms"}, wantErr: true},
		{name: "unknown fail", headers: map[string]string{"X-Sim-Fail": "503"}, wantErr: true},
		{name: "fail without count", headers: map[string]string{"X-Sim-Fail": "stall-after"}, wantErr: true},
		{name: "negative count", headers: map[string]string{"X-Sim-Fail": "disconnect-after=-1"}, wantErr: true},
		{name: "count not a number", headers: map[string]string{"X-Sim-Fail": "error-event-after=x"}, wantErr: true},
		{name: "unknown usage", headers: map[string]string{"X-Sim-Usage": "always"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			for k, v := range tt.headers {
				h.Set(k, v)
			}
			got, err := parseOverrides(h, ms(50), ms(10))
			if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
				t.Errorf("parseOverrides(%v) = %+v, %v; want %+v, error %t", tt.headers, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// endpoints are the generation endpoints with a small body each.
var endpoints = []struct{ name, path, body string }{
	{"chat", "/v1/chat/completions", `"max_tokens":4,"messages":[{"role":"user","content":"hi"}]`},
	{"completions", "/v1/completions", `"max_tokens":4,"prompt":"hi"`},
}

func TestFailStatus(t *testing.T) {
	t.Parallel()
	_, ts := startServer(t, nil)
	for _, status := range []int{500, 429} {
		for _, ep := range endpoints {
			for _, streaming := range []bool{false, true} {
				t.Run(fmt.Sprintf("%d %s stream=%t", status, ep.name, streaming), func(t *testing.T) {
					t.Parallel()
					body := fmt.Sprintf(`{"stream":%t,%s}`, streaming, ep.body)
					checkFailStatus(t, ts, ep.path, body, status, "X-Sim-Fail", fmt.Sprint(status))
				})
			}
		}
		t.Run(fmt.Sprintf("%d embeddings", status), func(t *testing.T) {
			t.Parallel()
			checkFailStatus(t, ts, "/v1/embeddings", `{"input":"hi"}`, status, "X-Sim-Fail", fmt.Sprint(status))
		})
	}
}

// checkFailStatus checks that a request is answered status with an OpenAI error body.
func checkFailStatus(t *testing.T, ts *httptest.Server, path, body string, status int, headers ...string) {
	t.Helper()
	code, hdr, b := call(t, ts, http.MethodPost, path, body, headers...)
	if code != status {
		t.Fatalf("POST %s %s (headers %q) status = %d, want %d; body %s", path, body, headers, code, status, b)
	}
	if e := decodeJSON[wireError](t, b); e.Error == nil || e.Error.Code != status || e.Error.Message == "" {
		t.Errorf("POST %s %s body = %s, want an OpenAI error with code %d", path, body, b, status)
	}
	if ra := hdr.Get("Retry-After"); (status == http.StatusTooManyRequests) != (ra == "1") {
		t.Errorf("POST %s %s status %d has Retry-After %q, want \"1\" exactly on 429", path, body, status, ra)
	}
}

func TestErrorRate(t *testing.T) {
	t.Parallel()
	_, ts := startServer(t, func(c *Config) { c.ErrorRate = 1 })
	for _, ep := range endpoints {
		b := post(t, ts, ep.path, `{`+ep.body+`}`, http.StatusInternalServerError)
		if e := decodeJSON[wireError](t, b); e.Error == nil || e.Error.Code != 500 {
			t.Errorf("POST %s body = %s, want an OpenAI error with code 500", ep.path, b)
		}
	}
	if st := getState(t, ts); st.Failed != 2 || st.Completed != 0 {
		t.Errorf("after 2 requests at error rate 1: State() = %+v, want 2 failed", st)
	}
}

// contentEvents counts the events of a stream that carry a token.
func contentEvents(events []string) int {
	n := 0
	for _, ev := range events {
		if strings.Contains(ev, `"content":" `) || strings.Contains(ev, `"text":" `) {
			n++
		}
	}
	return n
}

func TestDisconnectAfter(t *testing.T) {
	t.Parallel()
	_, ts := startServer(t, nil)
	for _, ep := range endpoints {
		for _, n := range []int{0, 2, 4} {
			t.Run(fmt.Sprintf("%s stream after %d", ep.name, n), func(t *testing.T) {
				t.Parallel()
				body := `{"stream":true,` + ep.body + `}`
				resp, err := send(t.Context(), t, ts, http.MethodPost, ep.path, body, "X-Sim-Fail", fmt.Sprintf("disconnect-after=%d", n))
				if err != nil {
					t.Fatalf("POST %s: %v", body, err)
				}
				defer resp.Body.Close()
				events, err := readEvents(resp.Body)
				if err == nil {
					t.Errorf("POST %s disconnect-after=%d: stream ended cleanly, want an aborted connection", body, n)
				}
				if got := contentEvents(events); got != n || strings.Contains(strings.Join(events, "\n"), "[DONE]") ||
					strings.Contains(strings.Join(events, "\n"), "finish_reason\":\"") {
					t.Errorf("POST %s disconnect-after=%d: events %q, want %d content chunks, no finish, no [DONE]", body, n, events, n)
				}
			})
		}
		t.Run(ep.name+" after more than the answer", func(t *testing.T) {
			t.Parallel()
			body := `{"stream":true,` + ep.body + `}`
			events := stream(t, ts, ep.path, body, "X-Sim-Fail", "disconnect-after=5")
			if events[len(events)-1] != "[DONE]" || contentEvents(events) != 4 {
				t.Errorf("POST %s disconnect-after=5 with 4 tokens: events %q, want a whole stream", body, events)
			}
		})
		t.Run(ep.name+" non-streaming", func(t *testing.T) {
			t.Parallel()
			resp, err := send(t.Context(), t, ts, http.MethodPost, ep.path, `{`+ep.body+`}`, "X-Sim-Fail", "disconnect-after=1")
			if err == nil {
				resp.Body.Close()
				t.Errorf("POST %s disconnect-after=1: status %d, want the connection aborted before the body", ep.path, resp.StatusCode)
			}
		})
	}
	t.Run("embeddings", func(t *testing.T) {
		t.Parallel()
		resp, err := send(t.Context(), t, ts, http.MethodPost, "/v1/embeddings", `{"input":"x"}`, "X-Sim-Fail", "disconnect-after=0")
		if err == nil {
			resp.Body.Close()
			t.Errorf("POST /v1/embeddings disconnect-after=0: status %d, want the connection aborted", resp.StatusCode)
		}
	})
}

func TestStallAfter(t *testing.T) {
	t.Parallel()
	for _, ep := range endpoints {
		for _, streaming := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s stream=%t", ep.name, streaming), func(t *testing.T) {
				t.Parallel()
				_, ts := startServer(t, nil)
				// Unstalled, the 4 tokens would take about 4 ms; the client gives up after 300 ms.
				ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
				defer cancel()
				body := fmt.Sprintf(`{"stream":%t,%s}`, streaming, ep.body)
				resp, err := send(ctx, t, ts, http.MethodPost, ep.path, body, "X-Sim-Fail", "stall-after=1")
				var events []string
				if err == nil {
					defer resp.Body.Close()
					if !streaming {
						t.Fatalf("POST %s stall-after=1: status %d, want no answer", body, resp.StatusCode)
					}
					r := &sseReader{r: bufio.NewReader(resp.Body)}
					for {
						ev, rerr := r.next()
						if rerr != nil {
							err = rerr
							break
						}
						events = append(events, ev)
					}
				}
				if !errors.Is(err, context.DeadlineExceeded) || contentEvents(events) != min(1, len(events)) {
					t.Errorf("POST %s stall-after=1: events %q then %v; want at most 1 content chunk, then nothing until the client gives up",
						body, events, err)
				}
				if streaming && contentEvents(events) != 1 {
					t.Errorf("POST %s stall-after=1: %d content chunks before the stall, want 1", body, contentEvents(events))
				}
				waitState(t, ts, "1 cancelled", func(s State) bool { return s.Running == 0 && s.Cancelled == 1 && s.Completed == 0 })
			})
		}
	}
}

func TestStallTimeout(t *testing.T) {
	t.Parallel()
	s, err := New(testConfig(), nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	synctest.Test(t, func(t *testing.T) {
		j := testJob(s, 5, 4, 1, ms(10), ms(10))
		j.ov.fault = fault{kind: faultStall, after: 2}
		r := &recordingSink{t0: time.Now()}
		if o := s.run(t.Context(), j, r); o != outcomeAborted {
			t.Errorf("stalled run = %v, want aborted", o)
		}
		// The fault fires when the third token is due, at 30 ms.
		if got, want := time.Since(r.t0), ms(30)+stallTimeout; got != want || len(r.tokens) != 2 {
			t.Errorf("stall-after=2: %d tokens, aborted after %v; want 2 tokens, aborted after %v", len(r.tokens), got, want)
		}
	})
}

func TestMalformed(t *testing.T) {
	t.Parallel()
	_, ts := startServer(t, nil)
	for _, ep := range endpoints {
		t.Run(ep.name+" stream", func(t *testing.T) {
			t.Parallel()
			body := `{"stream":true,` + ep.body + `}`
			events := stream(t, ts, ep.path, body, "X-Sim-Fail", "malformed")
			var bad []int
			for i, ev := range events {
				if ev != "[DONE]" && !json.Valid([]byte(ev)) {
					bad = append(bad, i)
				}
			}
			first := 0
			for contentEvents(events[:first+1]) == 0 {
				first++
			}
			if len(bad) != 1 || bad[0] != first+1 || contentEvents(events) != 4 || events[len(events)-1] != "[DONE]" {
				t.Errorf("POST %s malformed: events %q; want one invalid event right after the first content chunk, then the rest", body, events)
			}
		})
		t.Run(ep.name+" non-streaming", func(t *testing.T) {
			t.Parallel()
			b := post(t, ts, ep.path, `{`+ep.body+`}`, http.StatusOK, "X-Sim-Fail", "malformed")
			if json.Valid(b) || !strings.HasPrefix(string(b), `{"id":`) {
				t.Errorf("POST %s malformed: body %s, want truncated JSON", ep.path, b)
			}
		})
	}
}

func TestErrorEventAfter(t *testing.T) {
	t.Parallel()
	_, ts := startServer(t, nil)
	for _, ep := range endpoints {
		t.Run(ep.name+" stream", func(t *testing.T) {
			t.Parallel()
			body := `{"stream":true,` + ep.body + `}`
			events := stream(t, ts, ep.path, body, "X-Sim-Fail", "error-event-after=2")
			if len(events) < 2 || contentEvents(events) != 2 || events[len(events)-1] != "[DONE]" {
				t.Fatalf("POST %s error-event-after=2: events %q, want 2 content chunks, an error event, [DONE]", body, events)
			}
			e := decodeJSON[wireError](t, []byte(events[len(events)-2]))
			if e.Error == nil || e.Error.Type != "server_error" || e.Error.Code != 500 || e.Error.Message == "" {
				t.Errorf("POST %s error-event-after=2: error event %s, want type server_error, code 500", body, events[len(events)-2])
			}
		})
		t.Run(ep.name+" non-streaming", func(t *testing.T) {
			t.Parallel()
			checkFailStatus(t, ts, ep.path, `{`+ep.body+`}`, 500, "X-Sim-Fail", "error-event-after=1")
		})
	}
	if st := getState(t, ts); st.Running != 0 {
		t.Errorf("State() = %+v, want 0 running", st)
	}
}

func TestUsageHeader(t *testing.T) {
	t.Parallel()
	_, ts := startServer(t, nil)
	const msgs = `"max_tokens":3,"n":2,"messages":[{"role":"user","content":"hi"}]`
	tests := []struct {
		name, mode, options string
		wantOnFinish        bool
		wantUsageOnly       bool
	}{
		{name: "omit with everything asked", mode: "omit", options: `{"include_usage":true,"continuous_usage_stats":true}`},
		{name: "finish unasked", mode: "finish", options: `{}`, wantOnFinish: true},
		{name: "finish and include_usage", mode: "finish", options: `{"include_usage":true}`, wantOnFinish: true, wantUsageOnly: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := `{"stream":true,"stream_options":` + tt.options + `,` + msgs + `}`
			s := parseStream(t, stream(t, ts, "/v1/chat/completions", body, "X-Sim-Usage", tt.mode), "chat.completion.chunk", "sim-model")
			for i, c := range s.chunks {
				finish := len(c.Choices) == 1 && c.Choices[0].FinishReason != nil
				usageOnly := len(c.Choices) == 0
				want := (finish && tt.wantOnFinish) || (usageOnly && tt.wantUsageOnly)
				if (c.Usage != nil) != want {
					t.Errorf("%s X-Sim-Usage %s: chunk %d has usage %+v, want usage %t", body, tt.mode, i, c.Usage, want)
				}
				if c.Usage != nil && (c.Usage.CompletionTokens == nil || *c.Usage.CompletionTokens != 6) {
					t.Errorf("%s X-Sim-Usage %s: chunk %d usage %+v, want the final 6 completion tokens", body, tt.mode, i, c.Usage)
				}
			}
			if (s.usageAt >= 0) != tt.wantUsageOnly {
				t.Errorf("%s X-Sim-Usage %s: usage-only chunk at %d, want one %t", body, tt.mode, s.usageAt, tt.wantUsageOnly)
			}
		})
	}
	t.Run("omit non-streaming", func(t *testing.T) {
		t.Parallel()
		for _, req := range []struct{ path, body string }{
			{"/v1/chat/completions", `{` + msgs + `}`}, {"/v1/completions", `{"prompt":"x"}`}, {"/v1/embeddings", `{"input":"x"}`},
		} {
			b := post(t, ts, req.path, req.body, http.StatusOK, "X-Sim-Usage", "omit")
			if strings.Contains(string(b), `"usage"`) {
				t.Errorf("POST %s %s X-Sim-Usage omit: body %s has usage", req.path, req.body, b)
			}
		}
	})
}
