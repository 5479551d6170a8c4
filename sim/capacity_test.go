package sim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// recordingSink is a sink that notes when each call came, in the bubble's fake time.
type recordingSink struct {
	t0     time.Time // when the request began
	mu     sync.Mutex
	tokens []time.Duration // since start, in order
	done   time.Duration
	reason string
}

func (r *recordingSink) start(*usage) error { return nil }
func (r *recordingSink) malformed() error   { return nil }
func (r *recordingSink) fail() error        { return nil }

func (r *recordingSink) token(int, string, *usage) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tokens = append(r.tokens, time.Since(r.t0))
	return nil
}

func (r *recordingSink) finish(reason string, _ *usage) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done, r.reason = time.Since(r.t0), reason
	return nil
}

// testJob returns a job for s's first model with the given timings.
func testJob(s *Server, prompt, length, choices int, ttft, itl time.Duration) *job {
	j := &job{model: s.cfg.Models[0], promptTokens: prompt, length: length, finish: finishLength,
		ov: overrides{ttft: ttft, itl: itl}, arrived: time.Now()}
	for i := range choices {
		j.sources = append(j.sources, wordSource{rng: newRand(0, domainText, fmt.Sprint(i)), words: s.words})
	}
	return j
}

// ms is shorthand for milliseconds.
func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

func TestRunTiming(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		maxSeqs    int
		concurrent int
		wantTokens []time.Duration // for every request
	}{
		{name: "lone request", maxSeqs: 4, concurrent: 1, wantTokens: []time.Duration{ms(50), ms(60), ms(70), ms(80)}},
		{name: "two of two slots", maxSeqs: 2, concurrent: 2, wantTokens: []time.Duration{ms(50), ms(65), ms(80), ms(95)}},
		{name: "two of four slots", maxSeqs: 4, concurrent: 2, wantTokens: []time.Duration{ms(50), ms(62.5), ms(75), ms(87.5)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := New(func() Config { c := testConfig(); c.MaxNumSeqs = tt.maxSeqs; return c }(), nil)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			synctest.Test(t, func(t *testing.T) {
				sinks := make([]*recordingSink, tt.concurrent)
				var wg sync.WaitGroup
				for i := range sinks {
					sinks[i] = &recordingSink{t0: time.Now()}
					j := testJob(s, 10, len(tt.wantTokens), 1, ms(50), ms(10))
					wg.Go(func() {
						if o := s.run(t.Context(), j, sinks[i]); o != outcomeCompleted {
							t.Errorf("run %d = %v, want completed", i, o)
						}
					})
				}
				wg.Wait()
				for i, r := range sinks {
					if fmt.Sprint(r.tokens) != fmt.Sprint(tt.wantTokens) || r.done != tt.wantTokens[len(tt.wantTokens)-1] || r.reason != finishLength {
						t.Errorf("request %d: tokens at %v, finished at %v (%s); want tokens at %v, finish at the last, length",
							i, r.tokens, r.done, r.reason, tt.wantTokens)
					}
				}
				if st := s.State(); st.Running != 0 || st.KVCacheUsage != 0 || st.Completed != 0 {
					t.Errorf("after the runs State() = %+v, want idle (run alone does not count outcomes)", st)
				}
			})
		})
	}
}

func TestRunFIFO(t *testing.T) {
	t.Parallel()
	s, err := New(func() Config { c := testConfig(); c.MaxNumSeqs = 1; c.KVTokens = 1000; return c }(), nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		sinks := make([]*recordingSink, 3)
		var wg sync.WaitGroup
		for i := range sinks {
			sinks[i] = &recordingSink{t0: start}
			j := testJob(s, 100, 2, 1, ms(10), ms(10))
			wg.Go(func() { s.run(t.Context(), j, sinks[i]) })
			synctest.Wait() // Each request reaches the engine before the next one starts.
		}
		st := s.State()
		if st.Running != 1 || st.Waiting != 2 || st.KVCacheUsage != 0.1 {
			t.Errorf("with 3 requests and 1 slot State() = %+v, want 1 running, 2 waiting, KV 0.1", st)
		}
		wg.Wait()
		for i, r := range sinks {
			want := []time.Duration{ms(10 + 20*float64(i)), ms(20 + 20*float64(i))}
			if fmt.Sprint(r.tokens) != fmt.Sprint(want) {
				t.Errorf("request %d: tokens at %v, want %v (FIFO, TTFT includes the wait)", i, r.tokens, want)
			}
		}
	})
}

func TestRunCancelWhileWaiting(t *testing.T) {
	t.Parallel()
	s, err := New(func() Config { c := testConfig(); c.MaxNumSeqs = 1; return c }(), nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	synctest.Test(t, func(t *testing.T) {
		holdCtx, stopHold := context.WithCancel(t.Context())
		waitCtx, stopWait := context.WithCancel(t.Context())
		results := make(chan outcome, 2)
		var wg sync.WaitGroup
		wg.Go(func() { results <- s.run(holdCtx, testJob(s, 5, 3, 1, time.Hour, 0), &recordingSink{}) })
		synctest.Wait()
		wg.Go(func() { results <- s.run(waitCtx, testJob(s, 5, 3, 1, 0, 0), &recordingSink{}) })
		synctest.Wait()
		if st := s.State(); st.Running != 1 || st.Waiting != 1 {
			t.Fatalf("State() = %+v, want 1 running, 1 waiting", st)
		}
		stopWait()
		if o := <-results; o != outcomeCancelled {
			t.Errorf("cancelled waiting request: run = %v, want cancelled", o)
		}
		if st := s.State(); st.Running != 1 || st.Waiting != 0 {
			t.Errorf("after the waiting request left: State() = %+v, want 1 running, 0 waiting", st)
		}
		stopHold()
		if o := <-results; o != outcomeCancelled {
			t.Errorf("cancelled running request: run = %v, want cancelled", o)
		}
		wg.Wait()
		if st := s.State(); st.Running != 0 || st.Waiting != 0 || st.KVCacheUsage != 0 {
			t.Errorf("after both left: State() = %+v, want idle", st)
		}
	})
}

func TestCapacityWaiting(t *testing.T) {
	t.Parallel()
	_, ts := startServer(t, func(c *Config) { c.MaxNumSeqs = 1; c.KVTokens = 1000 })
	const body = `{"model":"sim-model","prompt":[[1,2,3,4,5,6,7,8,9,10]],"max_tokens":2,"stream":true}`

	holdCtx, release := context.WithCancel(t.Context())
	defer release()
	hold, err := send(holdCtx, t, ts, http.MethodPost, "/v1/completions", body, "X-Sim-TTFT", "1m")
	if err != nil {
		t.Fatalf("POST holding request: %v", err)
	}
	defer hold.Body.Close()
	waitState(t, ts, "1 running", func(s State) bool { return s.Running == 1 })

	queued := make(chan []string, 1)
	go func() { // Ends when the queued request has been answered, well before the test ends.
		resp, err := send(t.Context(), t, ts, http.MethodPost, "/v1/completions", body)
		if err != nil {
			queued <- nil
			return
		}
		defer resp.Body.Close()
		events, _ := readEvents(resp.Body)
		queued <- events
	}()
	st := waitState(t, ts, "1 running, 1 waiting", func(s State) bool { return s.Running == 1 && s.Waiting == 1 })
	if st.KVCacheUsage != 0.01 {
		t.Errorf("KV usage with one 10-token prompt of 1000 = %v, want 0.01", st.KVCacheUsage)
	}
	code, _, metrics := call(t, ts, http.MethodGet, "/metrics", "")
	for _, want := range []string{`vllm:num_requests_waiting{model_name="sim-model"} 1`,
		`vllm:num_requests_running{model_name="sim-model"} 1`, `vllm:kv_cache_usage_perc{model_name="sim-model"} 0.01`} {
		if code != http.StatusOK || !strings.Contains(string(metrics), want) {
			t.Errorf("GET /metrics (status %d) lacks %q", code, want)
		}
	}

	release()
	events := <-queued
	if len(events) == 0 || events[len(events)-1] != "[DONE]" {
		t.Errorf("queued request got events %q, want a whole stream", events)
	}
	waitState(t, ts, "idle with 1 completed and 1 cancelled", func(s State) bool {
		return s.Running == 0 && s.Waiting == 0 && s.Completed == 1 && s.Cancelled == 1 && s.KVCacheUsage == 0
	})
}

func TestKVCacheUsageCapped(t *testing.T) {
	t.Parallel()
	_, ts := startServer(t, func(c *Config) { c.KVTokens = 100 })
	prompt := strings.TrimSuffix(strings.Repeat("1,", 60), ",")
	body := `{"prompt":[` + prompt + `],"max_tokens":4}`
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			resp, err := send(ctx, t, ts, http.MethodPost, "/v1/completions", body, "X-Sim-TTFT", "1m")
			if err == nil {
				resp.Body.Close()
			}
		})
	}
	waitState(t, ts, "2 running with KV usage capped at 1", func(s State) bool { return s.Running == 2 && s.KVCacheUsage == 1 })
	cancel()
	wg.Wait()
	waitState(t, ts, "idle", func(s State) bool { return s.Running == 0 && s.KVCacheUsage == 0 && s.Cancelled == 2 })
}

func TestClientDisconnect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, path, body string
	}{
		{name: "chat stream", path: "/v1/chat/completions",
			body: `{"stream":true,"max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`},
		{name: "completions stream", path: "/v1/completions", body: `{"stream":true,"max_tokens":50,"prompt":"hi"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, ts := startServer(t, nil)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			resp, err := send(ctx, t, ts, http.MethodPost, tt.path, tt.body, "X-Sim-ITL", "1h")
			if err != nil {
				t.Fatalf("POST %s: %v", tt.body, err)
			}
			defer resp.Body.Close()
			r := &sseReader{r: bufio.NewReader(resp.Body)}
			for {
				ev, err := r.next()
				if err != nil {
					t.Fatalf("POST %s: read: %v", tt.body, err)
				}
				if strings.Contains(ev, `"content":" `) || strings.Contains(ev, `"text":" `) {
					break // The first token is out; the next one is an hour away.
				}
			}
			if st := getState(t, ts); st.Running != 1 || st.KVCacheUsage == 0 {
				t.Errorf("mid-stream State() = %+v, want 1 running and some KV usage", st)
			}
			cancel()
			start := time.Now()
			waitState(t, ts, "idle with 1 cancelled", func(s State) bool {
				return s.Running == 0 && s.Cancelled == 1 && s.KVCacheUsage == 0 && s.Completed == 0
			})
			if d := time.Since(start); d > time.Second {
				t.Errorf("slot freed %v after the client left, want well under a second", d)
			}
			if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
				t.Errorf("reading on after cancel: %v, want context.Canceled", err)
			}
		})
	}
}
