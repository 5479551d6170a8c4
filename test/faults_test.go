package test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// cancelTimeout bounds how long llmsim may take to see that a client went away. The target
// is 100 ms; the bound is generous because timed assertions must not flake on a busy machine.
const cancelTimeout = 3 * time.Second

// TestClientDisconnect checks that a client that hangs up, mid-stream or while waiting for a
// non-streaming answer, stops generation upstream, and that the gateway logs and counts the
// request as client_cancelled with status 499.
func TestClientDisconnect(t *testing.T) {
	t.Parallel()
	sim := startSim(t, "-model", simModel, "-ttft", "5ms", "-itl", "2ms")
	gw := startGatewayConfig(t, gatewayConfig(sim.url, ""), nil)
	// The cases run one after the other, since each reads llmsim's counters.
	t.Run("stream", func(t *testing.T) { testHangUp(t, sim, gw, true) })
	t.Run("non-streaming", func(t *testing.T) { testHangUp(t, sim, gw, false) })

	fams := scrape(t, gw.admin+"/metrics")
	for _, m := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"llmgate_requests_total", map[string]string{"model": simModel, "code": "499", "outcome": "client_cancelled"}, 2},
		{"llmgate_active_requests", map[string]string{}, 0},
		{"llmgate_backend_inflight", map[string]string{"backend": "sim"}, 0},
	} {
		if got, found := metricValue(fams, m.name, m.labels); !found || got != m.want {
			t.Errorf("after the clients hung up, %s%v = %v (found %v), want %v", m.name, m.labels, got, found, m.want)
		}
	}
}

// testHangUp starts a 200-token request at 50 ms a token, hangs up once it is generating
// (after three content chunks of a stream), and checks that llmsim and llmgate saw it.
func testHangUp(t *testing.T, sim *simProc, gw *gwProc, stream bool) {
	hc := newHTTPClient(t)
	before := getSimState(t, hc, sim)
	id := newRequestID(t)
	ctx, hangUp := context.WithCancel(reqCtx(t))
	defer hangUp()
	body := fmt.Sprintf(`{"model":"sim-model","messages":[{"role":"user","content":"a long answer please"}],"max_tokens":200,"stream":%v}`, stream)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gw.url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = headers("Content-Type", "application/json", "X-Request-Id", id, "X-Sim-ITL", "50ms")

	if stream {
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", body, err)
		}
		defer resp.Body.Close()
		events := newSSEReader(resp.Body)
		for contents := 0; contents < 3; {
			data, err := events.next()
			if err != nil {
				t.Fatalf("stream ended after %d content chunks: %v", contents, err)
			}
			if c := parseChunk(t, data); len(c.Choices) > 0 && c.Choices[0].Delta.Content != nil && *c.Choices[0].Delta.Content != "" {
				contents++
			}
		}
		if st := getSimState(t, hc, sim); st.Running != 1 {
			t.Fatalf("llmsim state mid-stream = %+v, want running 1", st)
		}
		hangUp()
	} else {
		// The client waits in Do; it hangs up once llmsim is generating.
		done := make(chan error, 1)
		go func() {
			resp, err := hc.Do(req)
			if err == nil {
				_ = resp.Body.Close()
			}
			done <- err
		}()
		var st simState
		generating := poll(settleTimeout, func() bool {
			st = getSimState(t, hc, sim)
			return st.Running == 1
		})
		hangUp()
		if err := <-done; err == nil {
			t.Fatalf("POST %s answered before the client hung up", body)
		}
		if !generating {
			t.Fatalf("llmsim state %s after POST %s = %+v, want running 1", settleTimeout, body, st)
		}
	}
	closed := time.Now()

	var st simState
	if !poll(cancelTimeout, func() bool {
		st = getSimState(t, hc, sim)
		return st.Running == 0 && st.Cancelled == before.Cancelled+1
	}) {
		t.Fatalf("llmsim state %s after the client hung up = %+v, want running 0 and cancelled %d",
			cancelTimeout, st, before.Cancelled+1)
	}
	t.Logf("llmsim saw the cancellation %s after the client hung up (target 100ms)", time.Since(closed).Round(time.Millisecond))
	if st.Completed != before.Completed {
		t.Errorf("llmsim completed = %d, want %d: the abandoned request must not count as completed", st.Completed, before.Completed)
	}
	l := requestLog(t, gw, id)
	if status, _ := l.num("status"); l.str("outcome") != "client_cancelled" || status != 499 {
		t.Errorf("access log of the abandoned request: outcome %q status %v, want client_cancelled 499\n%v", l.str("outcome"), status, l)
	}
}

// TestMidStreamFailure checks that a stream that fails after its first byte reaches the client
// as a cut connection (never a clean [DONE]), and is logged and counted with the right outcome.
// An in-band error event passes through as the backend sent it.
func TestMidStreamFailure(t *testing.T) {
	t.Parallel()
	// The stall needs a short chunk_timeout; the other faults get their own gateway with the
	// default, so that a slow moment on a busy machine cannot turn them into timeouts.
	gw := startSharedGateway(t, "")
	short := startSharedGateway(t, "upstream:\n  chunk_timeout: 300ms\n")
	tests := []struct {
		fail         string
		gw           *gwProc
		wantContents int
		wantCut      bool // the connection is cut: a read error, no [DONE]
		wantError    bool // an in-band error event reaches the client
		wantOutcome  string
	}{
		{"disconnect-after=3", gw, 3, true, false, "upstream_error"},
		{"error-event-after=2", gw, 2, false, true, "upstream_error"},
		{"stall-after=2", short, 2, true, false, "timeout"},
	}
	t.Run("group", func(t *testing.T) {
		for _, tc := range tests {
			t.Run(tc.fail, func(t *testing.T) {
				t.Parallel()
				id := newRequestID(t)
				body := `{"model":"sim-model","messages":[{"role":"user","content":"fail me"}],"max_tokens":20,"stream":true}`
				resp := send(t, newHTTPClient(t), http.MethodPost, tc.gw.url+"/v1/chat/completions", body,
					headers("X-Request-Id", id, "X-Sim-Fail", tc.fail))
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b, _ := io.ReadAll(resp.Body)
					t.Fatalf("X-Sim-Fail: %s: status %d, want 200 then a failure mid-stream:\n%s", tc.fail, resp.StatusCode, b)
				}
				events, err := readAllEvents(resp.Body)
				contents, sawError, sawDone := 0, false, false
				for _, ev := range events {
					if ev == "[DONE]" {
						sawDone = true
						continue
					}
					c := parseChunk(t, ev)
					if c.Error != nil {
						sawError = true
					}
					if len(c.Choices) > 0 && c.Choices[0].Delta.Content != nil && *c.Choices[0].Delta.Content != "" {
						contents++
					}
				}
				if tc.wantCut {
					if err == nil || sawDone {
						t.Errorf("X-Sim-Fail: %s: read error %v, [DONE] seen %v; want the stream cut (a read error) and no [DONE]\nevents: %q",
							tc.fail, err, sawDone, events)
					} else if !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Logf("X-Sim-Fail: %s: the cut stream failed with %v", tc.fail, err)
					}
				} else if err != nil || !sawDone {
					t.Errorf("X-Sim-Fail: %s: stream read error %v, [DONE] seen %v; want the events as the backend sent them, [DONE] last",
						tc.fail, err, sawDone)
				}
				if sawError != tc.wantError {
					t.Errorf("X-Sim-Fail: %s: in-band error event seen = %v, want %v\nevents: %q", tc.fail, sawError, tc.wantError, events)
				}
				if contents != tc.wantContents {
					t.Errorf("X-Sim-Fail: %s: %d content chunks reached the client, want %d", tc.fail, contents, tc.wantContents)
				}
				if l := requestLog(t, tc.gw, id); l.str("outcome") != tc.wantOutcome {
					t.Errorf("X-Sim-Fail: %s: logged outcome %q, want %q\n%v", tc.fail, l.str("outcome"), tc.wantOutcome, l)
				}
			})
		}
	})
	for _, c := range []struct {
		gw      *gwProc
		outcome string
		want    float64
		config  string
	}{
		{gw, "upstream_error", 2, "default"}, {gw, "ok", 0, "default"}, {gw, "timeout", 0, "default"},
		{short, "timeout", 1, "chunk_timeout 300ms"}, {short, "ok", 0, "chunk_timeout 300ms"},
	} {
		labels := map[string]string{"route": "/v1/chat/completions", "model": simModel, "outcome": c.outcome}
		got, _ := metricValue(scrape(t, c.gw.admin+"/metrics"), "llmgate_requests_total", labels)
		if got != c.want {
			t.Errorf("gateway with %s config: llmgate_requests_total%v = %v, want %v", c.config, labels, got, c.want)
		}
	}
}
