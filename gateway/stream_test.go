package gateway

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

const (
	roleChunk   = `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}` + "\n\n"
	helloChunk  = `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" hello"},"finish_reason":null}]}` + "\n\n"
	worldChunk  = `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" world"},"finish_reason":null}]}` + "\n\n"
	finishChunk = `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"length"}]}` + "\n\n"
	usageChunk  = `data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":2,"total_tokens":13}}` + "\n\n"
	doneEvent   = "data: [DONE]\n\n"
	streamBody  = `{"model":"m","stream":true,"messages":[{"role":"user","content":"say hello world"}]}`
)

func TestStreamRelaysBytesAndStripsInjectedUsage(t *testing.T) {
	t.Parallel()
	// Events split across writes at awkward places, a keep-alive comment and CRLF endings.
	crlf := strings.ReplaceAll(worldChunk, "\n", "\r\n")
	up := sseUpstream(t, roleChunk[:10], roleChunk[10:]+": keep-alive\n\n", helloChunk+crlf[:len(crlf)-1],
		crlf[len(crlf)-1:], finishChunk, usageChunk, doneEvent)
	f := newFixture(t, nil, up.URL)

	resp := f.post(t, "/v1/chat/completions", streamBody)
	got := readAll(t, resp.Body)
	want := roleChunk + ": keep-alive\n\n" + helloChunk + crlf + finishChunk + doneEvent
	if got != want {
		t.Fatalf("client got:\n%q\nwant (usage-only chunk dropped, rest byte-identical):\n%q", got, want)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type = %q, want text/event-stream", ct)
	}
	if b := resp.Header.Get("X-LLMGate-Backend"); b != "b0" {
		t.Errorf("X-LLMGate-Backend = %q, want b0", b)
	}
	if st := resp.Header.Get("Server-Timing"); !strings.Contains(st, "gateway;dur=") || !strings.Contains(st, "upstream;dur=") {
		t.Errorf("Server-Timing = %q, want gateway and upstream durations", st)
	}
	if tr := resp.Trailer.Get("Server-Timing"); !strings.HasPrefix(tr, "ttft;dur=") {
		t.Errorf("Server-Timing trailer = %q, want ttft;dur=…", tr)
	}
	f.srv.Close() // wait for the handler, and so its accounting, to finish
	if v := f.requests(t, "200", "ok"); v != 1 {
		t.Errorf("requests_total{200,ok} = %v, want 1", v)
	}
	for _, c := range []struct {
		typ  string
		want float64
	}{{"input", 11}, {"output", 2}} {
		if v := f.metric(t, "llmgate_tokens_total", map[string]string{"model": "m", "type": c.typ, "source": "upstream"}); v != c.want {
			t.Errorf("tokens_total{%s,upstream} = %v, want %v", c.typ, v, c.want)
		}
	}
	if v := f.metric(t, "llmgate_time_to_first_token_seconds", map[string]string{"model": "m", "backend": "b0"}); v != 1 {
		t.Errorf("TTFT observations = %v, want 1", v)
	}
	if v := f.metric(t, "llmgate_inter_token_latency_seconds", map[string]string{"model": "m"}); v != 1 {
		t.Errorf("inter-token observations = %v, want 1 (two content deltas)", v)
	}
}

func TestStreamKeepsUsageTheClientAskedFor(t *testing.T) {
	t.Parallel()
	var upstreamBody string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		upstreamBody = string(b)
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, helloChunk+usageChunk+doneEvent)
	}))
	defer up.Close()
	f := newFixture(t, nil, up.URL)
	body := `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]}`
	got := readAll(t, f.post(t, "/v1/chat/completions", body).Body)
	if want := helloChunk + usageChunk + doneEvent; got != want {
		t.Errorf("client got %q, want %q", got, want)
	}
	if m := gjson.Get(upstreamBody, "model").Str; m != "up-m" {
		t.Errorf("upstream model = %q, want the rename up-m", m)
	}
}

func TestStreamEstimatesTokensWithoutUsage(t *testing.T) {
	t.Parallel()
	up := sseUpstream(t, roleChunk, helloChunk, worldChunk, finishChunk, doneEvent)
	f := newFixture(t, nil, up.URL)
	_ = readAll(t, f.post(t, "/v1/chat/completions", streamBody).Body)
	f.srv.Close()
	// " hello world" is 2 tokens in cl100k_base; the prompt is one user message of
	// "say hello world" (3 tokens) + 3 per message + 1 role + 3 reply priming = 10.
	if v := f.metric(t, "llmgate_tokens_total", map[string]string{"model": "m", "type": "output", "source": "estimated"}); v != 2 {
		t.Errorf("estimated output tokens = %v, want 2", v)
	}
	if v := f.metric(t, "llmgate_tokens_total", map[string]string{"model": "m", "type": "input", "source": "estimated"}); v != 10 {
		t.Errorf("estimated input tokens = %v, want 10", v)
	}
}

// TestStreamUpstreamFaultIsRelayedAndCounted: an in-band error event, or an event whose data
// is not JSON, reaches the client as sent, and the request counts as an upstream error.
func TestStreamUpstreamFaultIsRelayedAndCounted(t *testing.T) {
	t.Parallel()
	for name, bad := range map[string]string{
		"in-band error": `data: {"error":{"message":"boom","type":"server_error","code":500}}` + "\n\n",
		"not JSON":      "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"x\"\n\n", // cut JSON
	} {
		f := newFixture(t, nil, sseUpstream(t, helloChunk, bad, doneEvent).URL)
		got := readAll(t, f.post(t, "/v1/chat/completions", streamBody).Body)
		if want := helloChunk + bad + doneEvent; got != want {
			t.Errorf("%s: client got %q, want %q", name, got, want)
		}
		f.srv.Close()
		if v := f.requests(t, "200", "upstream_error"); v != 1 {
			t.Errorf("%s: requests_total{200,upstream_error} = %v, want 1", name, v)
		}
	}
}

// TestStreamFlushesEachEvent proves nothing is buffered: the upstream sends its second event
// only after the client has read the first.
func TestStreamFlushesEachEvent(t *testing.T) {
	t.Parallel()
	gotFirst := make(chan struct{})
	up := heldStream(t, untilClosed(gotFirst), worldChunk+doneEvent)
	f := newFixture(t, nil, up.URL)
	resp := f.post(t, "/v1/chat/completions", streamBody)
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != strings.TrimSuffix(helloChunk, "\n") {
		t.Fatalf("first line = %q, %v; want the first event before the upstream sends more", line, err)
	}
	close(gotFirst)
	rest := readAll(t, br)
	if want := "\n" + worldChunk + doneEvent; rest != want {
		t.Errorf("rest = %q, want %q", rest, want)
	}
}

// TestStreamFailureAborts: an upstream that dies mid-stream gets the client's connection cut,
// never a [DONE].
func TestStreamFailureAborts(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, helloChunk)
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // cut the connection mid-stream
	}))
	defer up.Close()
	f := newFixture(t, nil, up.URL)
	resp := f.post(t, "/v1/chat/completions", streamBody)
	got, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Errorf("read the cut stream: err = nil, want an error (the connection must be aborted)")
	}
	if strings.Contains(string(got), "[DONE]") {
		t.Errorf("cut stream ended with [DONE]: %q", got)
	}
	if string(got) != helloChunk {
		t.Errorf("client got %q, want the one event sent before the failure", got)
	}
	f.srv.Close()
	if v := f.requests(t, "200", "upstream_error"); v != 1 {
		t.Errorf("requests_total{200,upstream_error} = %v, want 1", v)
	}
}

func TestStreamChunkTimeoutAborts(t *testing.T) {
	t.Parallel()
	up := heldStream(t, untilCancelled, "") // stalls until the gateway gives up
	f := newFixture(t, func(c *Config) { c.Upstream.ChunkTimeout = Duration(100e6) }, up.URL)
	resp := f.post(t, "/v1/chat/completions", streamBody)
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Errorf("read stalled stream: err = nil, want the connection aborted after chunk_timeout")
	}
	f.srv.Close()
	if v := f.requests(t, "200", "timeout"); v != 1 {
		t.Errorf("requests_total{200,timeout} = %v, want 1", v)
	}
}

// TestClientDisconnectCancelsUpstream: when the client goes away the upstream request's
// context ends, so the backend stops generating.
func TestClientDisconnectCancelsUpstream(t *testing.T) {
	t.Parallel()
	upstreamGone := make(chan struct{})
	up := heldStream(t, func(r *http.Request) bool {
		untilCancelled(r)
		close(upstreamGone)
		return false
	}, "")
	f := newFixture(t, nil, up.URL)
	resp := f.post(t, "/v1/chat/completions", streamBody)
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatalf("read first event: %v", err)
	}
	resp.Body.Close()
	<-upstreamGone // the test times out if the upstream is never cancelled
	f.srv.Close()
	if v := f.requests(t, "499", "client_cancelled"); v != 1 {
		t.Errorf("requests_total{499,client_cancelled} = %v, want 1", v)
	}
	lines := f.logLines(t)
	if len(lines) != 1 || lines[0]["outcome"] != "client_cancelled" || lines[0]["status"] != float64(499) {
		t.Errorf("log lines = %v, want one with outcome client_cancelled and status 499", lines)
	}
}

// TestStreamWithoutContentType: a backend that streams without saying what it sends is still
// relayed event by event when the client asked for a stream.
func TestStreamWithoutContentType(t *testing.T) {
	t.Parallel()
	gotFirst := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil // no type, and no sniffing
		_, _ = io.WriteString(w, helloChunk)
		w.(http.Flusher).Flush()
		select {
		case <-gotFirst:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, doneEvent)
	}))
	defer up.Close()
	f := newFixture(t, nil, up.URL)
	resp := f.post(t, "/v1/chat/completions", streamBody)
	first := make([]byte, len(helloChunk))
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != helloChunk {
		t.Fatalf("first event = %q, %v; want it relayed before the stream ends", first, err)
	}
	close(gotFirst)
	if rest := readAll(t, resp.Body); rest != doneEvent {
		t.Errorf("rest = %q, want %q", rest, doneEvent)
	}
}

// TestStreamFirstTokenWaitsFirstByteTimeout: before its first token a stream may be queued
// and prefilling; that wait is bounded by first_byte_timeout, not chunk_timeout.
func TestStreamFirstTokenWaitsFirstByteTimeout(t *testing.T) {
	t.Parallel()
	slowFirstToken := func(wait time.Duration) *httptest.Server {
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, roleChunk) // headers and the role chunk at once, as llmsim does
			w.(http.Flusher).Flush()
			select {
			case <-time.After(wait):
			case <-r.Context().Done():
				return
			}
			_, _ = io.WriteString(w, helloChunk+doneEvent)
		}))
		t.Cleanup(up.Close)
		return up
	}
	cases := []struct {
		name      string
		firstByte time.Duration
		wantBody  string
		outcome   string
	}{
		{"within first_byte_timeout", 5 * time.Second, roleChunk + helloChunk + doneEvent, "ok"},
		{"past first_byte_timeout", 150 * time.Millisecond, roleChunk, "timeout"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			up := slowFirstToken(400 * time.Millisecond)
			f := newFixture(t, func(cfg *Config) {
				cfg.Upstream.ChunkTimeout = Duration(100 * time.Millisecond)
				cfg.Upstream.FirstByteTimeout = Duration(c.firstByte)
			}, up.URL)
			got, _ := io.ReadAll(f.post(t, "/v1/chat/completions", streamBody).Body)
			if string(got) != c.wantBody {
				t.Errorf("client got %q, want %q", got, c.wantBody)
			}
			f.srv.Close()
			if v := f.requests(t, "200", c.outcome); v != 1 {
				t.Errorf("requests_total{200,%s} = %v, want 1", c.outcome, v)
			}
		})
	}
}

// TestStreamStalledClientIsNotABackendTimeout: a client that stops reading is cut after
// chunk_timeout and counted as the client's doing, not as a backend that did not answer.
func TestStreamStalledClientIsNotABackendTimeout(t *testing.T) {
	t.Parallel()
	// Keep-alive comments take the same write path as chunks without the cost of inspecting
	// them, so the relay outruns the sockets' buffers even under -race.
	big := ":" + strings.Repeat("x", 64<<10) + "\n\n"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for range 1024 { // 64 MiB: far more than the sockets between gateway and client buffer
			if _, err := io.WriteString(w, big); err != nil {
				return
			}
		}
		_, _ = io.WriteString(w, doneEvent)
	}))
	defer up.Close()
	f := newFixture(t, func(cfg *Config) { cfg.Upstream.ChunkTimeout = Duration(200 * time.Millisecond) }, up.URL)
	resp := f.post(t, "/v1/chat/completions", streamBody)
	waitFor(t, "the gateway to give up on the stalled client", func() bool {
		return strings.Contains(f.logs.String(), `"msg":"request"`)
	})
	_, _ = io.Copy(io.Discard, resp.Body)
	f.srv.Close()
	if v := f.requests(t, "499", "client_cancelled"); v != 1 {
		t.Errorf("requests_total{499,client_cancelled} = %v, want 1; log: %s", v, f.logs.String())
	}
}

// TestStreamStripsInjectedUsageInAnyShape: a usage-only chunk is dropped whether its choices
// are "[]", "[ ]" or absent.
func TestStreamStripsInjectedUsageInAnyShape(t *testing.T) {
	t.Parallel()
	for _, usageOnly := range []string{
		`data: {"choices": [ ],"usage":{"prompt_tokens":1,"completion_tokens":2}}` + "\n\n",
		`data: {"usage":{"prompt_tokens":1,"completion_tokens":2}}` + "\n\n",
		`data: {"choices":null,"usage":{"prompt_tokens":1,"completion_tokens":2}}` + "\n\n",
	} {
		up := sseUpstream(t, helloChunk, usageOnly, doneEvent)
		f := newFixture(t, nil, up.URL)
		if got := readAll(t, f.post(t, "/v1/chat/completions", streamBody).Body); got != helloChunk+doneEvent {
			t.Errorf("with %q the client got %q, want it dropped", usageOnly, got)
		}
	}
}
