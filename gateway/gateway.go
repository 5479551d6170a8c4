package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/semaphore"

	"github.com/llmgate/llmgate/telemetry"
	"github.com/llmgate/llmgate/tokenizer"
)

// Options are the dependencies of a Gateway beside its config. Zero fields take defaults.
type Options struct {
	// Logger receives the access log and the gateway's own messages. Nil discards them.
	Logger *slog.Logger
	// Registry is where the gateway registers and serves its metrics. Nil means a new
	// registry with the Go and process collectors.
	Registry *prometheus.Registry
	// Version is reported by llmgate_build_info and -version.
	Version string
	// Audit receives each request's prompt and completion, which it redacts. Nil, the
	// default, records no content.
	Audit *telemetry.AuditLog
	// TracerProvider makes the request and upstream spans. Nil means no tracing: incoming
	// trace context is still passed upstream.
	TracerProvider trace.TracerProvider
}

// Gateway is the running proxy. It is safe for concurrent use; Run serves it.
type Gateway struct {
	cfg      Config
	log      *slog.Logger
	reg      *prometheus.Registry
	metrics  *telemetry.Metrics
	audit    *telemetry.AuditLog // nil when the audit log is off
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator // W3C trace context, in from clients and out to backends
	client   *http.Client
	backends []*backend
	models   atomic.Pointer[modelTable]
	discover *discoverer         // nil when models are configured
	notReady atomic.Bool         // /readyz answers 503: set first on shutdown
	draining atomic.Bool         // new requests are refused: set once the listener closes
	rr       atomic.Uint64       // rotates ties between equally loaded backends
	buffers  sync.Pool           // *[]byte for buffered answers
	answers  *semaphore.Weighted // response_memory_bytes: what all buffered answers may hold
	texts    sync.Pool           // *[]byte keeping a stream's text, so that relaying a chunk allocates nothing
	idPrefix string
	idSeq    atomic.Uint64
	intake   *intake        // request bodies: read deadline, memory budget, forwarding headers (intake.go)
	started  time.Time      // reported as the creation time of model cards
	handlers sync.WaitGroup // proxy handlers running; shutdown waits for them after cutting them
}

// New builds a gateway from a validated config. It does no I/O; Run starts serving.
func New(cfg Config, opts Options) (*Gateway, error) {
	g := &Gateway{cfg: cfg, log: opts.Logger, reg: opts.Registry, idPrefix: newIDPrefix(), started: time.Now(),
		tracer: telemetry.Tracer(opts.TracerProvider), prop: propagation.TraceContext{}, audit: opts.Audit}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.reg == nil {
		g.reg = telemetry.NewRegistry()
	}
	g.buffers.New = func() any { return new([]byte) }
	g.answers = semaphore.NewWeighted(cfg.ResponseMemoryBytes)
	g.texts.New = func() any { b := make([]byte, 0, 4096); return &b }
	g.client = &http.Client{Transport: newTransport(cfg.Upstream),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var err error
	if g.intake, err = newIntake(cfg); err != nil {
		return nil, err
	}
	prefixed := telemetry.Prefixed(g.reg)
	if g.metrics, err = telemetry.NewMetrics(prefixed, opts.Version); err != nil {
		return nil, err
	}
	byName := map[string]*backend{}
	for _, bc := range cfg.Backends {
		b, err := newBackend(bc)
		if err != nil {
			return nil, err
		}
		g.backends = append(g.backends, b)
		byName[b.name] = b
	}
	if err := registerBackendMetrics(prefixed, g.backends); err != nil {
		return nil, err
	}
	if len(cfg.Models) == 0 {
		counter, err := tokenizer.New(defaultTokenizer)
		if err != nil {
			return nil, fmt.Errorf("load tokenizer: %w", err)
		}
		g.discover = &discoverer{backends: g.backends, client: g.client, counter: counter, log: g.log,
			interval: cfg.Upstream.DiscoveryInterval.D(), retry: cfg.Upstream.HealthInterval.D(), publish: g.models.Store}
		g.models.Store(&modelTable{partial: true})
		return g, nil
	}
	table, err := staticModels(cfg.Models, byName)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	g.models.Store(table)
	return g, nil
}

// Run listens on the public and admin addresses and serves until ctx is done, then shuts down
// in order: /readyz turns 503 and new requests are refused, in-flight requests and streams get
// shutdown_grace to finish, then background loops stop. It returns nil after a clean shutdown.
func (g *Gateway) Run(ctx context.Context) error {
	pub, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	adm, err := net.Listen("tcp", g.cfg.AdminListen)
	if err != nil {
		_ = pub.Close()
		return fmt.Errorf("listen admin: %w", err)
	}
	if g.discover != nil {
		g.discover.refresh(ctx) // serve the models the backends list now, before the first request
	}
	// Requests' contexts derive from base, so that shutdown can end those still running when
	// shutdown_grace is over with a cause that labels them.
	base, cutRequests := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cutRequests(nil)
	public := g.newServer(g.publicRoutes())
	public.BaseContext = func(net.Listener) context.Context { return base }
	admin := g.newServer(g.adminRoutes())
	g.log.Info("listening", slog.String("listen", pub.Addr().String()),
		slog.String("admin_listen", adm.Addr().String()), slog.Int("backends", len(g.backends)))

	loopCtx, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoops()
	var wg sync.WaitGroup
	serveErr := make(chan error, 2)
	wg.Go(func() { serveErr <- serve(public, pub) })
	wg.Go(func() { serveErr <- serve(admin, adm) })
	g.startLoops(loopCtx, &wg)

	var runErr error
	select {
	case <-ctx.Done():
		g.notReady.Store(true)
		g.log.InfoContext(ctx, "not ready; shutting down", slog.Duration("delay", g.cfg.ShutdownDelay.D()))
		runErr = waitDelay(g.cfg.ShutdownDelay.D(), serveErr)
	case runErr = <-serveErr:
	}
	g.shutdown(ctx, public, admin, cutRequests)
	stopLoops()
	wg.Wait()
	return runErr
}

// startLoops starts the background loops, each owned by Run through wg.
func (g *Gateway) startLoops(ctx context.Context, wg *sync.WaitGroup) {
	probeClient := &http.Client{Transport: g.client.Transport}
	for _, b := range g.backends {
		p := &prober{b: b, client: probeClient, interval: g.cfg.Upstream.HealthInterval.D(), log: g.log}
		wg.Go(func() { p.run(ctx) })
	}
	if g.discover != nil {
		wg.Go(func() { g.discover.run(ctx) })
	}
}

func serve(s *http.Server, l net.Listener) error {
	if err := s.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", l.Addr(), err)
	}
	return nil
}

// waitDelay waits out shutdown_delay, unless a server fails first, and returns that failure.
func waitDelay(d time.Duration, serveErr <-chan error) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case err := <-serveErr:
		return err
	}
}

// shutdown drains the public server within shutdown_grace; what still runs after it is cut,
// labelled as cut by shutdown, and given a moment to record itself. Then the admin server
// closes. ctx is Run's, already done; the deadlines derive from it without its cancellation.
func (g *Gateway) shutdown(ctx context.Context, public, admin *http.Server, cutRequests context.CancelCauseFunc) {
	g.notReady.Store(true)
	g.draining.Store(true)
	g.intake.cutUploads() // a stalled upload must not hold shutdown for the grace period
	grace := g.cfg.ShutdownGrace.D()
	g.log.InfoContext(ctx, "shutting down", slog.Duration("grace", grace))
	base := context.WithoutCancel(ctx)
	ctx, cancel := context.WithTimeout(base, grace)
	defer cancel()
	if err := public.Shutdown(ctx); err != nil {
		g.log.WarnContext(ctx, "grace period over; cutting open requests", slog.Any("error", err))
		cutRequests(errShuttingDown)
		// The cut requests answer 503 or abort their streams before the connections close;
		// a client that does not read is bounded by its write deadline, the wait by 5s.
		waitBounded(&g.handlers, 5*time.Second)
		_ = public.Close()
	}
	actx, acancel := context.WithTimeout(base, time.Second)
	defer acancel()
	if err := admin.Shutdown(actx); err != nil {
		_ = admin.Close()
	}
	g.client.CloseIdleConnections()
}

func (g *Gateway) newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
}

// waitBounded waits for wg, or for d at most.
func waitBounded(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { // exits when wg is done; Run does not outlive it by more than d
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}
