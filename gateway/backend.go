package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// backend is one inference server and its live state. It is safe for concurrent use.
type backend struct {
	name    string
	kind    string
	base    *url.URL
	host    string // base's host and port, for spans
	port    int
	authz   string // the Authorization value sent upstream; empty sends none
	maxConc int64  // 0 is no cap

	inflight atomic.Int64
	up       atomic.Bool
	// noHealth is set once the backend answered /health with 404 or 405: it is probed on
	// /v1/models instead, which every OpenAI-compatible server serves.
	noHealth atomic.Bool
}

func newBackend(c BackendConfig) (*backend, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, fmt.Errorf("parse backend %s url: %w", c.Name, err)
	}
	b := &backend{name: c.Name, kind: c.Kind, base: u, maxConc: int64(c.MaxConcurrency), host: u.Hostname()}
	b.port, _ = strconv.Atoi(u.Port())
	if b.port == 0 {
		b.port = map[string]int{"http": 80, "https": 443}[u.Scheme]
	}
	if c.APIKeyEnv != "" {
		b.authz = "Bearer " + os.Getenv(c.APIKeyEnv)
	}
	b.up.Store(true) // optimistic until the first probe says otherwise
	return b, nil
}

// url returns the backend's URL for an API path such as /v1/chat/completions.
func (b *backend) url(path string) string { return b.base.String() + path }

// healthPath is the endpoint probed for liveness, by server dialect.
func (b *backend) healthPath() string {
	if b.kind == "openai" || b.noHealth.Load() {
		return "/v1/models"
	}
	return "/health" // vLLM, llama.cpp's llama-server, TGI and SGLang all serve it
}

// acquire counts a request in flight to b, unless b is at its cap.
func (b *backend) acquire() bool {
	n := b.inflight.Add(1)
	if b.maxConc > 0 && n > b.maxConc {
		b.inflight.Add(-1)
		return false
	}
	return true
}

func (b *backend) release() { b.inflight.Add(-1) }

// newTransport returns the client transport shared by every backend: keep-alive pools sized
// for many long concurrent streams, so that requests do not dial, and no transparent
// compression, so that SSE bytes arrive as the backend wrote them.
func newTransport(c UpstreamConfig) *http.Transport {
	d := &net.Dialer{Timeout: c.ConnectTimeout.D(), KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil, // backends are reached directly, never through HTTP_PROXY
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   c.MaxIdleConnsPerBackend,
		IdleConnTimeout:       c.IdleConnTimeout.D(),
		TLSHandshakeTimeout:   c.ConnectTimeout.D(),
		ResponseHeaderTimeout: c.FirstByteTimeout.D(),
		ExpectContinueTimeout: 0,
		DisableCompression:    true,
		ReadBufferSize:        32 << 10,
		WriteBufferSize:       32 << 10,
	}
}

// pick returns the least loaded healthy backend of pool that is under its cap, skipping
// those in tried, and counts the request on it. start rotates ties so that equal backends
// share the load. When it returns nil, busy says whether a healthy backend was only full.
func pick(pool []*backend, tried []*backend, start uint64) (b *backend, busy bool) {
	full := make([]*backend, 0, 4)
	for {
		var best *backend
		n := len(pool)
		for i := range n {
			c := pool[(int(start%uint64(n))+i)%n]
			if !c.up.Load() || contains(tried, c) || contains(full, c) {
				continue
			}
			if c.maxConc > 0 && c.inflight.Load() >= c.maxConc {
				full = append(full, c)
				continue
			}
			if best == nil || c.inflight.Load() < best.inflight.Load() {
				best = c
			}
		}
		if best == nil {
			return nil, len(full) > 0
		}
		if best.acquire() {
			return best, false
		}
		full = append(full, best) // lost the race for its last slot: try the next
	}
}

func contains(s []*backend, b *backend) bool {
	for _, x := range s {
		if x == b {
			return true
		}
	}
	return false
}

// prober probes one backend's health endpoint until its context ends: every interval while
// the backend is up, and sooner while it is down, with a backoff that starts at
// firstProbeRetry and doubles up to interval, so that a backend that starts after the
// gateway (as llmsim under make run) is in service moments after it listens.
type prober struct {
	b        *backend
	client   *http.Client
	interval time.Duration
	log      *slog.Logger
}

// firstProbeRetry is how soon a backend that failed its probe is probed again.
const firstProbeRetry = 100 * time.Millisecond

func (p *prober) run(ctx context.Context) {
	t := time.NewTimer(p.interval)
	defer t.Stop()
	var backoff time.Duration // 0 while the backend passes its probes
	for {
		err := p.probe(ctx)
		if ctx.Err() != nil {
			return // shutting down: say nothing about the backend
		}
		p.b.setUp(err == nil, p.log, err)
		next := p.interval
		if err != nil {
			backoff = nextProbeBackoff(backoff, p.interval)
			next = backoff
		} else {
			backoff = 0
		}
		t.Reset(next)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// nextProbeBackoff is the wait before the next probe of a backend that is down: firstProbeRetry
// after the first failure, then doubling, never more than limit (health_interval).
func nextProbeBackoff(prev, limit time.Duration) time.Duration {
	if prev <= 0 {
		return min(firstProbeRetry, limit)
	}
	return min(2*prev, limit)
}

// probe asks the backend's health endpoint once; nil means healthy.
func (p *prober) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, min(p.interval, 5*time.Second))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.b.url(p.b.healthPath()), nil)
	if err != nil {
		return fmt.Errorf("build probe: %w", err)
	}
	if p.b.authz != "" {
		req.Header.Set("Authorization", p.b.authz)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("probe %s: %w", p.b.name, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if (resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed) &&
		p.b.healthPath() == "/health" {
		p.b.noHealth.Store(true) // a server without /health, such as Ollama's
		return p.probe(ctx)
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("probe %s: status %d", p.b.name, resp.StatusCode)
	}
	return nil
}

// setUp records b's health, logging each change.
func (b *backend) setUp(ok bool, log *slog.Logger, err error) {
	if b.up.Swap(ok) == ok {
		return
	}
	if ok {
		log.Info("backend up", slog.String("backend", b.name))
		return
	}
	log.Warn("backend down", slog.String("backend", b.name), slog.Any("error", err))
}

// registerBackendMetrics exports each backend's health and in-flight count, read from its
// atomics at scrape time so the request path pays nothing.
func registerBackendMetrics(reg prometheus.Registerer, backends []*backend) error {
	for _, b := range backends {
		labels := prometheus.Labels{"backend": b.name}
		up := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "backend_up", ConstLabels: labels,
			Help: "1 when the backend's last health probe passed."}, func() float64 {
			if b.up.Load() {
				return 1
			}
			return 0
		})
		inflight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "backend_inflight", ConstLabels: labels,
			Help: "Requests in flight to the backend."}, func() float64 { return float64(b.inflight.Load()) })
		for _, c := range []prometheus.Collector{up, inflight} {
			if err := reg.Register(c); err != nil {
				return fmt.Errorf("register backend metrics: %w", err)
			}
		}
	}
	return nil
}
