package telemetry

import (
	"fmt"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Buckets follow the OpenTelemetry GenAI semantic conventions, with sub-10 ms buckets added
// where the gateway's own overhead shows and a longer tail for long prompts.
var (
	// TTFTBuckets spans 0.5 ms to 60 s.
	TTFTBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,
		0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 30, 60}
	// InterTokenBuckets spans 1 ms to 2.5 s.
	InterTokenBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15,
		0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5}
	// DurationBuckets spans 0.5 ms to 82 s.
	DurationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16,
		0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
)

// Token sources, the values of the source label of llmgate_tokens_total.
const (
	SourceUpstream  = "upstream"
	SourceEstimated = "estimated"
)

// Metrics holds the gateway's request and stream metrics. It is safe for concurrent use.
type Metrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	ttft         *prometheus.HistogramVec
	upstreamTTFT *prometheus.HistogramVec
	interToken   *prometheus.HistogramVec
	generation   *prometheus.HistogramVec
	tokens       *prometheus.CounterVec
	active       *prometheus.GaugeVec
	buildInfo    *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them on reg, which should already add the
// llmgate_ prefix (see Prefixed). version is reported by llmgate_build_info.
func NewMetrics(reg prometheus.Registerer, version string) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "requests_total",
			Help: "Requests answered, by route, model, HTTP status and outcome."},
			[]string{"route", "model", "code", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "request_duration_seconds",
			Help: "Time from a request's arrival to its last byte.", Buckets: DurationBuckets},
			[]string{"route", "model"}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "time_to_first_token_seconds",
			Help:    "Time from a request's arrival to the first content delta written to the client.",
			Buckets: TTFTBuckets}, []string{"model", "backend"}),
		upstreamTTFT: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "upstream_time_to_first_token_seconds",
			Help:    "Time from sending a request upstream to reading its first content delta.",
			Buckets: TTFTBuckets}, []string{"model", "backend"}),
		interToken: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "inter_token_latency_seconds",
			Help: "Gap between consecutive content deltas of a stream.", Buckets: InterTokenBuckets},
			[]string{"model"}),
		generation: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "generation_duration_seconds",
			Help: "Time from a stream's first content delta to its last.", Buckets: DurationBuckets},
			[]string{"model"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tokens_total",
			Help: "Tokens processed, by type (input, output) and source (upstream usage or estimated)."},
			[]string{"model", "type", "source"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "active_requests",
			Help: "Requests in flight in the gateway."}, []string{"route"}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "build_info",
			Help: "Always 1; labels name the build."}, []string{"version", "goversion"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.ttft, m.upstreamTTFT,
		m.interToken, m.generation, m.tokens, m.active, m.buildInfo} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register request metrics: %w", err)
		}
	}
	m.buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	return m, nil
}

// StreamObserver holds one stream's label children, resolved once so that observing a chunk
// allocates nothing. Its zero value observes nothing.
type StreamObserver struct {
	TTFT, UpstreamTTFT, InterToken, Generation prometheus.Observer
}

// Stream resolves the observers for a stream of model served by backend.
func (m *Metrics) Stream(model, backend string) StreamObserver {
	return StreamObserver{
		TTFT:         m.ttft.WithLabelValues(model, backend),
		UpstreamTTFT: m.upstreamTTFT.WithLabelValues(model, backend),
		InterToken:   m.interToken.WithLabelValues(model),
		Generation:   m.generation.WithLabelValues(model),
	}
}

// Active returns the in-flight gauge of route.
func (m *Metrics) Active(route string) prometheus.Gauge {
	return m.active.WithLabelValues(route)
}

// Finish records a finished request: its count by status and outcome, and its duration.
func (m *Metrics) Finish(route, model string, code int, outcome string, d time.Duration) {
	m.requests.WithLabelValues(route, model, strconv.Itoa(code), outcome).Inc()
	m.duration.WithLabelValues(route, model).Observe(d.Seconds())
}

// Tokens adds a request's input and output token counts, taken from source.
func (m *Metrics) Tokens(model, source string, input, output int) {
	if input > 0 {
		m.tokens.WithLabelValues(model, "input", source).Add(float64(input))
	}
	if output > 0 {
		m.tokens.WithLabelValues(model, "output", source).Add(float64(output))
	}
}

// Observe records v seconds on o when o is set.
func Observe(o prometheus.Observer, d time.Duration) {
	if o != nil {
		o.Observe(d.Seconds())
	}
}
