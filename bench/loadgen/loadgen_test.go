package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestOpenLoop checks that every call starts at its scheduled time even though each call
// blocks far longer than the interval: the schedule does not wait for answers.
func TestOpenLoop(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const n, interval, work = 5, 100 * time.Millisecond, time.Second
		start := time.Now().Add(50 * time.Millisecond)
		var mu sync.Mutex
		var started []time.Duration
		maxInFlight, inFlight := 0, 0
		openLoop(t.Context(), start, interval, n, func(i int, scheduled time.Time) {
			mu.Lock()
			if want := start.Add(time.Duration(i) * interval); !scheduled.Equal(want) {
				t.Errorf("call %d scheduled at %v, want %v", i, scheduled.Sub(start), want.Sub(start))
			}
			started = append(started, time.Since(start))
			inFlight++
			maxInFlight = max(maxInFlight, inFlight)
			mu.Unlock()
			time.Sleep(work)
			mu.Lock()
			inFlight--
			mu.Unlock()
		})
		if got := time.Since(start); got != (n-1)*interval+work {
			t.Errorf("openLoop returned %v after start, want %v (after the last call)", got, (n-1)*interval+work)
		}
		for i, got := range started {
			if want := time.Duration(i) * interval; got != want {
				t.Errorf("call %d started at %v, want %v", i, got, want)
			}
		}
		if maxInFlight != n {
			t.Errorf("at most %d calls in flight, want all %d (open loop)", maxInFlight, n)
		}
	})
}

func TestOpenLoopStopsOnCancel(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		start := time.Now()
		time.AfterFunc(250*time.Millisecond, cancel)
		var calls atomic.Int32
		openLoop(ctx, start, 100*time.Millisecond, 100, func(int, time.Time) { calls.Add(1) })
		if calls := calls.Load(); calls != 3 { // at 0, 100ms and 200ms
			t.Errorf("openLoop cancelled at 250ms made %d calls, want 3", calls)
		}
	})
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	ms := func(vs ...int) []time.Duration {
		out := make([]time.Duration, len(vs))
		for i, v := range vs {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // reversed, to check that it sorts
	}
	cases := []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", ms(7), 0.99, 7 * time.Millisecond},
		{"median of odd", ms(3, 1, 2), 0.5, 2 * time.Millisecond},
		{"median of even is the lower", ms(4, 1, 3, 2), 0.5, 2 * time.Millisecond},
		{"p50 of 1..100", ms(hundred...), 0.5, 50 * time.Millisecond},
		{"p99 of 1..100", ms(hundred...), 0.99, 99 * time.Millisecond},
		{"p100", ms(hundred...), 1, 100 * time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := percentile(c.in, c.p); got != c.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", c.in, c.p, got, c.want)
			}
		})
	}
}

func TestParseStatCPU(t *testing.T) {
	t.Parallel()
	// Fields 3 to 17; utime (14) is 250 ticks and stime (15) is 30.
	const rest = " S 1 2 3 4 5 6 7 8 9 10 250 30 0 0 20 0 1 0"
	cases := []struct {
		name    string
		in      string
		want    float64
		wantErr bool
	}{
		{"plain", "1234 (llmgate)" + rest, 2.8, false},
		{"name with spaces and parens", "1234 (a) b (c)" + rest, 2.8, false},
		{"no name", "1234 llmgate" + rest, 0, true},
		{"short", "1234 (llmgate) S 1 2 3", 0, true},
		{"not a number", "1234 (x) S 1 2 3 4 5 6 7 8 9 10 x 30 0", 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseStatCPU([]byte(c.in))
			if (err != nil) != c.wantErr || got != c.want {
				t.Errorf("parseStatCPU(%q) = %v, %v; want %v, error %t", c.in, got, err, c.want, c.wantErr)
			}
		})
	}
}

func TestCPUSecondsOfSelf(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("CPU time is read from /proc, which only Linux has")
	}
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) { //nolint:revive // burn CPU so that the reading is above zero
	}
	if got := selfCPU(); !(got > 0) {
		t.Errorf("selfCPU() = %v after 50ms of spinning, want > 0", got)
	}
}

// chunk is a chat-completion chunk with the given delta.
func chunk(delta string) string {
	return `data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":` + delta + `}]}` + "\n\n"
}

func TestReadStream(t *testing.T) {
	t.Parallel()
	role := chunk(`{"role":"assistant","content":""}`)
	word := chunk(`{"content":" hi"}`)
	finish := `data: {"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}` + "\n\n"
	done := "data: [DONE]\n\n"
	cases := []struct {
		name    string
		in      string
		want    int
		wantErr string
	}{
		{"complete", role + word + word + finish + done, 2, ""},
		{"crlf", strings.ReplaceAll(role+word+done, "\n", "\r\n"), 1, ""},
		{"comment and usage chunk", ": ping\n\n" + word + `data: {"choices":[],"usage":{"completion_tokens":1}}` + "\n\n" + done, 1, ""},
		{"no done", role + word, 1, "without [DONE]"},
		{"too few deltas", word + done, 2, "1 content deltas, want 2"},
		{"in-band error", word + `data: {"error":{"message":"boom"}}` + "\n\n" + done, 1, "in-band error"},
		{"data after done", word + done + word, 1, "after [DONE]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			first, err := readStream(strings.NewReader(c.in), c.want)
			if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("readStream(%q) error = %v, want %q", c.in, err, c.wantErr)
			}
			if c.wantErr == "" && first.IsZero() {
				t.Errorf("readStream(%q) noted no first content delta", c.in)
			}
		})
	}
}

func TestReadAnswer(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in string
		wantErr  bool
	}{
		{"ok", `{"choices":[{"message":{"content":" a b"}}],"usage":{"completion_tokens":2}}`, false},
		{"wrong count", `{"choices":[{"message":{"content":" a"}}],"usage":{"completion_tokens":1}}`, true},
		{"no content", `{"choices":[{"message":{"content":""}}],"usage":{"completion_tokens":2}}`, true},
		{"not json", `oops`, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if err := readAnswer(strings.NewReader(c.in), 2); (err != nil) != c.wantErr {
				t.Errorf("readAnswer(%q, 2) = %v, want error %t", c.in, err, c.wantErr)
			}
		})
	}
}

// stepUpstream serves a chat stream of two content deltas; it writes the second only after
// the test closes next, so that a test can tell whether the first arrived on its own.
func stepUpstream(t *testing.T, next <-chan struct{}) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			t.Errorf("upstream read body: %v", err)
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, chunk(`{"content":" one"}`))
		w.(http.Flusher).Flush()
		select {
		case <-next:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, chunk(`{"content":" two"}`)+"data: [DONE]\n\n")
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestReverseProxyRelaysEachEvent checks that the -serve-proxy handler passes the first event
// on before the upstream has written the second.
func TestReverseProxyRelaysEachEvent(t *testing.T) {
	t.Parallel()
	next := make(chan struct{})
	upstream := stepUpstream(t, next)
	rp, err := newReverseProxy(upstream.URL)
	if err != nil {
		t.Fatalf("newReverseProxy(%q): %v", upstream.URL, err)
	}
	proxy := httptest.NewServer(bufferBody(rp))
	defer proxy.Close()
	client := newClient()
	defer client.CloseIdleConnections()
	resp, err := client.Post(proxy.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"stream":true}`))
	if err != nil {
		t.Fatalf("POST through the proxy: %v", err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, " one") {
		t.Fatalf("first line through the proxy = %q, %v; want the first delta before the upstream sends more", line, err)
	}
	close(next)
	rest, err := io.ReadAll(br)
	if err != nil || !strings.Contains(string(rest), " two") || !strings.HasSuffix(string(rest), "data: [DONE]\n\n") {
		t.Errorf("rest of the stream = %q, %v; want the second delta and [DONE]", rest, err)
	}
}

func TestNewReverseProxyRejectsBadUpstream(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "127.0.0.1:8000", "://x"} {
		if _, err := newReverseProxy(in); err == nil {
			t.Errorf("newReverseProxy(%q) = nil error, want one", in)
		}
	}
}

// TestDoRequest checks the timings of one streamed request against a live loopback server:
// total and TTFT count from the scheduled start, not from when the request went out.
func TestDoRequest(t *testing.T) {
	t.Parallel()
	next := make(chan struct{})
	close(next)
	upstream := stepUpstream(t, next)
	client := newClient()
	defer client.CloseIdleConnections()
	const late = 30 * time.Millisecond
	scheduled := time.Now().Add(-late)
	s := doRequest(t.Context(), client, upstream.URL, chatBody(2, true), true, 2, scheduled)
	if s.err != nil {
		t.Fatalf("doRequest: %v", s.err)
	}
	if s.lag < late || s.ttft < late || s.total < s.ttft {
		t.Errorf("doRequest scheduled %v ago: lag %v, ttft %v, total %v; want lag, ttft >= %v and total >= ttft",
			late, s.lag, s.ttft, s.total, late)
	}
	bad := doRequest(t.Context(), client, upstream.URL, chatBody(3, true), true, 3, time.Now())
	if bad.err == nil {
		t.Errorf("doRequest wanting 3 deltas of a 2-delta stream: nil error, want one")
	}
}

func TestDoRequestStatus(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"error":{"message":"no"}}`, http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	client := newClient()
	defer client.CloseIdleConnections()
	s := doRequest(t.Context(), client, srv.URL, chatBody(1, false), false, 1, time.Now())
	if s.err == nil || !strings.Contains(s.err.Error(), "status 503") {
		t.Errorf("doRequest against a 503 = %v, want a status 503 error", s.err)
	}
}

func TestSummarizeAndTables(t *testing.T) {
	t.Parallel()
	base := time.Unix(1000, 0)
	mk := func(total, ttft time.Duration, i int, err error) sample {
		sched := base.Add(time.Duration(i) * 10 * time.Millisecond)
		return sample{total: total, ttft: ttft, end: sched.Add(total), err: err, lag: time.Millisecond}
	}
	var direct, gw []sample
	for i := range 100 {
		direct = append(direct, mk(100*time.Millisecond, 20*time.Millisecond, i, nil))
		gw = append(gw, mk(103*time.Millisecond, 21*time.Millisecond, i, nil))
	}
	gw[5] = mk(time.Second, 0, 5, errors.New("boom"))
	rd := summarize(targetDirect, modeStream, direct)
	rd2 := summarize(targetDirect, modeStream, gw[:5])
	rg := summarize(targetGateway, modeStream, gw)
	rg.cpu = 2
	if rg.errors != 1 || rg.firstErr != "boom" || rg.p50 != 103*time.Millisecond || rg.ttft99 != 21*time.Millisecond {
		t.Errorf("summarize(gateway) = errors %d (%q), p50 %v, ttft p99 %v; want 1 (boom), 103ms, 21ms",
			rg.errors, rg.firstErr, rg.p50, rg.ttft99)
	}
	// 99 good answers between the first scheduled start and the last end, 1.093 s apart.
	if got, want := rg.rate(), 99/1.093; got < want-0.01 || got > want+0.01 {
		t.Errorf("rate() = %.3f, want %.3f", got, want)
	}
	if got := rg.cpuPer1k(); got != 20 {
		t.Errorf("cpuPer1k() with 2 CPU s for 100 requests = %v, want 20", got)
	}
	var text, md strings.Builder
	env := runEnv{cfg: config{rate: 100, duration: time.Second}, cpus: 2, goVersion: "go", loadBefore: "0.1", loadAfter: "0.2"}
	writeText(&text, env, []result{rd, rg})
	writeMarkdown(&md, env, []result{rd, rg, rd2})
	for _, want := range []string{"+3.00", "21.00", "20.000"} {
		if !strings.Contains(text.String(), want) || !strings.Contains(md.String(), want) {
			t.Errorf("tables lack %q:\n%s\n%s", want, text.String(), md.String())
		}
	}
	lines := strings.Split(strings.TrimSpace(md.String()), "\n")
	if len(lines) != 7 || !strings.HasPrefix(lines[2], "| target |") || !strings.HasPrefix(lines[5], "| llmgate | stream |") ||
		!strings.HasPrefix(lines[6], "| direct | stream |") || !strings.Contains(lines[6], "| +3.00 | +3.00 |") {
		t.Errorf("markdown = %q, want heading, blank, header, rule, 3 rows, the second direct run against the first", lines)
	}
}

func TestParseFlags(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"defaults", nil, ""},
		{"subset", []string{"-targets", "llmgate,direct", "-modes", "stream"}, ""},
		{"proxy mode", []string{"-serve-proxy", "-upstream", "http://127.0.0.1:1"}, ""},
		{"proxy mode without upstream", []string{"-serve-proxy"}, "-upstream"},
		{"zero rate", []string{"-rate", "0"}, "-rate"},
		{"unbounded run", []string{"-rate", "5000", "-duration", "2m"}, "at most"},
		{"unknown target", []string{"-targets", "nginx"}, "unknown \"nginx\""},
		{"extra argument", []string{"now"}, "unexpected argument"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseFlags(c.args, io.Discard)
			if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Errorf("parseFlags(%q) = %v, want error containing %q", c.args, err, c.wantErr)
			}
		})
	}
}
