//go:build soak

package test

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// soakDuration is the whole soak's length; `make soak SOAK_DURATION=30m` sets it.
var soakDuration = flag.Duration("soak.duration", 5*time.Minute, "how long TestSoak runs")

const soakWorkers = 16

// soakScenario is one kind of request the soak sends, and whether its result is as expected.
type soakScenario struct {
	name string
	run  func(hc *http.Client, gw *gwProc) error
}

// TestSoak runs mixed traffic with every fault llmsim can inject for -soak.duration, in two
// equal phases after a warm-up, and checks that llmgate leaks nothing: after each phase every
// in-flight gauge returns to zero, and goroutines and open file descriptors after the second
// phase are no more than after the first, though it served as many requests again.
func TestSoak(t *testing.T) {
	sim := startSim(t, "-model", simModel, "-ttft", "5ms", "-itl", "2ms", "-max-num-seqs", "256")
	// A short idle_conn_timeout lets the upstream keep-alive pool drain after each phase, so
	// that what remains is what leaked.
	gw := startGatewayConfig(t, gatewayConfig(sim.url, "upstream: {chunk_timeout: 500ms, idle_conn_timeout: 1s}\n"), nil)
	scenarios := soakScenarios()
	phase := func(name string, d time.Duration) (goroutines, fds float64) {
		counts := make([]atomic.Int64, len(scenarios))
		var failures atomic.Int64
		var firstErr atomic.Value
		hc := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: soakWorkers}}
		stop := time.Now().Add(d)
		var wg sync.WaitGroup
		for w := range soakWorkers {
			wg.Go(func() {
				for i := w; time.Now().Before(stop); i += soakWorkers {
					k := i % len(scenarios)
					if err := scenarios[k].run(hc, gw); err != nil {
						failures.Add(1)
						firstErr.CompareAndSwap(nil, fmt.Errorf("%s: %w", scenarios[k].name, err))
					}
					counts[k].Add(1)
				}
			})
		}
		wg.Wait()
		hc.CloseIdleConnections()
		var total int64
		for k := range counts {
			total += counts[k].Load()
		}
		t.Logf("%s: %d requests in %s, %d unexpected results", name, total, d, failures.Load())
		if err, _ := firstErr.Load().(error); err != nil {
			t.Errorf("%s: %d requests did not behave as expected; first: %v", name, failures.Load(), err)
		}
		return quiesce(t, gw, sim, name)
	}
	phase("warm-up", *soakDuration/5)
	g1, f1 := phase("phase 1", *soakDuration*2/5)
	g2, f2 := phase("phase 2", *soakDuration*2/5)
	t.Logf("goroutines %v -> %v, open fds %v -> %v", g1, g2, f1, f2)
	if g2 > g1+4 {
		t.Errorf("goroutines grew from %v to %v over phase 2: a leak", g1, g2)
	}
	if f2 > f1+4 {
		t.Errorf("open file descriptors grew from %v to %v over phase 2: a leak", f1, f2)
	}
}

// quiesce waits until nothing is in flight in llmgate or llmsim, then returns llmgate's
// goroutine and open-fd counts once they have stopped falling.
func quiesce(t *testing.T, gw *gwProc, sim *simProc, phase string) (goroutines, fds float64) {
	t.Helper()
	hc := newHTTPClient(t)
	idle := poll(settleTimeout, func() bool {
		fams := scrape(t, gw.admin+"/metrics")
		active, _ := metricValue(fams, "llmgate_active_requests", nil)
		inflight, _ := metricValue(fams, "llmgate_backend_inflight", nil)
		return active == 0 && inflight == 0 && getSimState(t, hc, sim).Running == 0
	})
	if !idle {
		t.Fatalf("%s: requests still in flight after the load stopped", phase)
	}
	// Idle connections close over idle_conn_timeout (1s); the counts are read once they have
	// not changed for a second.
	prevG, prevF, changed := -1.0, -1.0, time.Now()
	poll(3*settleTimeout, func() bool {
		fams := scrape(t, gw.admin+"/metrics")
		goroutines, _ = metricValue(fams, "go_goroutines", nil)
		fds, _ = metricValue(fams, "process_open_fds", nil)
		if goroutines != prevG || fds != prevF {
			prevG, prevF, changed = goroutines, fds, time.Now()
		}
		return time.Since(changed) > time.Second
	})
	return goroutines, fds
}

func soakScenarios() []soakScenario {
	chat := func(stream bool, maxTokens int) string {
		return fmt.Sprintf(`{"model":%q,"stream":%v,"max_tokens":%d,"messages":[{"role":"user","content":"soak"}]}`,
			simModel, stream, maxTokens)
	}
	return []soakScenario{
		{"chat", func(hc *http.Client, gw *gwProc) error {
			return expectStatus(hc, gw, chat(false, 16), 200, nil)
		}},
		{"stream", func(hc *http.Client, gw *gwProc) error { return expectStream(hc, gw, chat(true, 16), nil, true) }},
		{"hang-up", func(hc *http.Client, gw *gwProc) error { return hangUp(hc, gw, chat(true, 200)) }},
		{"disconnect-after", func(hc *http.Client, gw *gwProc) error {
			return expectStream(hc, gw, chat(true, 16), http.Header{"X-Sim-Fail": {"disconnect-after=2"}}, false)
		}},
		{"stall-after", func(hc *http.Client, gw *gwProc) error {
			return expectStream(hc, gw, chat(true, 16), http.Header{"X-Sim-Fail": {"stall-after=1"}}, false)
		}},
		{"error-event", func(hc *http.Client, gw *gwProc) error {
			return expectStream(hc, gw, chat(true, 16), http.Header{"X-Sim-Fail": {"error-event-after=1"}}, true)
		}},
		{"upstream-500", func(hc *http.Client, gw *gwProc) error {
			return expectStatus(hc, gw, chat(false, 4), 500, http.Header{"X-Sim-Fail": {"500"}})
		}},
		{"embeddings", func(hc *http.Client, gw *gwProc) error {
			return expectStatus(hc, gw, `{"model":"`+simModel+`","input":["a","b"]}`, 200, nil)
		}},
		{"unknown-model", func(hc *http.Client, gw *gwProc) error {
			return expectStatus(hc, gw, `{"model":"nope","messages":[]}`, 404, nil)
		}},
	}
}

func soakPost(hc *http.Client, gw *gwProc, body string, hdr http.Header) (*http.Response, error) {
	path := "/v1/chat/completions"
	if strings.Contains(body, `"input"`) {
		path = "/v1/embeddings"
	}
	req, err := http.NewRequest(http.MethodPost, gw.url+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	return hc.Do(req)
}

func expectStatus(hc *http.Client, gw *gwProc, body string, want int, hdr http.Header) error {
	resp, err := soakPost(hc, gw, body, hdr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("status %d, want %d", resp.StatusCode, want)
	}
	return nil
}

// expectStream reads a whole stream; complete says whether it must end with [DONE] or be cut.
func expectStream(hc *http.Client, gw *gwProc, body string, hdr http.Header, complete bool) error {
	resp, err := soakPost(hc, gw, body, hdr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	done := strings.HasSuffix(string(b), "data: [DONE]\n\n")
	switch {
	case complete && (err != nil || !done):
		return fmt.Errorf("stream cut (%v) or without [DONE]", err)
	case !complete && (err == nil || done):
		return errors.New("a failed stream was not aborted")
	}
	return nil
}

// hangUp reads the first event of a long stream and closes the connection.
func hangUp(hc *http.Client, gw *gwProc, body string) error {
	resp, err := soakPost(hc, gw, body, nil)
	if err != nil {
		return err
	}
	_, err = newSSEReader(resp.Body).next()
	resp.Body.Close()
	return err
}
