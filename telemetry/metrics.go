package telemetry

import (
	"fmt"
	"runtime"
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

// Native histograms are exposed beside the classic buckets to a scraper that negotiates the
// protobuf format: a growth factor of 1.1 between buckets (schema 3), at most 160 buckets per
// series, reset at most hourly when that limit is reached.
const (
	nativeFactor     = 1.1
	nativeMaxBuckets = 160
	nativeMinReset   = time.Hour
)

// Token sources, the values of the source label of llmgate_tokens_total.
const (
	SourceUpstream  = "upstream"
	SourceEstimated = "estimated"
)

// NoTenant is the tenant label of a request when no tenants are configured.
const NoTenant = "none"

// Metrics holds the gateway's request and stream metrics. It is safe for concurrent use. A
// nil *Metrics records nothing, so that benchmarks can measure what the metrics cost.
type Metrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	ttft         *prometheus.HistogramVec
	upstreamTTFT *prometheus.HistogramVec
	interToken   *prometheus.HistogramVec
	generation   *prometheus.HistogramVec
	tokens       *prometheus.CounterVec
	cost         *prometheus.CounterVec
	retries      *prometheus.CounterVec
	active       *prometheus.GaugeVec
	buildInfo    *prometheus.GaugeVec
}

// histogram returns a histogram vector with classic buckets and native buckets beside them.
func histogram(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets,
		NativeHistogramBucketFactor: nativeFactor, NativeHistogramMaxBucketNumber: nativeMaxBuckets,
		NativeHistogramMinResetDuration: nativeMinReset}, labels)
}

// NewMetrics creates the metrics and registers them on reg, which should already add the
// llmgate_ prefix (see Prefixed). version is reported by llmgate_build_info.
func NewMetrics(reg prometheus.Registerer, version string) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "requests_total",
			Help: "Requests answered, by route, model, HTTP status, outcome and tenant."},
			[]string{"route", "model", "code", "outcome", "tenant"}),
		duration: histogram("request_duration_seconds", "Time from a request's arrival to its last byte.",
			DurationBuckets, "route", "model"),
		ttft: histogram("time_to_first_token_seconds",
			"Time from a request's arrival to the first content delta written to the client.",
			TTFTBuckets, "model", "backend"),
		upstreamTTFT: histogram("upstream_time_to_first_token_seconds",
			"Time from sending a request upstream to reading its first content delta.",
			TTFTBuckets, "model", "backend"),
		interToken: histogram("inter_token_latency_seconds", "Gap between consecutive content deltas of a stream.",
			InterTokenBuckets, "model"),
		generation: histogram("generation_duration_seconds", "Time from a stream's first content delta to its last.",
			DurationBuckets, "model"),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tokens_total",
			Help: "Tokens processed, by type (input, output), source (upstream usage or estimated) and tenant."},
			[]string{"model", "type", "source", "tenant"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cost_usd_total",
			Help: "Cost of the tokens processed, in US dollars, from the models' price table."},
			[]string{"model", "tenant"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "retries_total",
			Help: "Requests sent again to another backend, by the reason the last attempt failed."},
			[]string{"model", "reason"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "active_requests",
			Help: "Requests in flight in the gateway."}, []string{"route"}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "build_info",
			Help: "Always 1; labels name the build."}, []string{"version", "goversion"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.ttft, m.upstreamTTFT,
		m.interToken, m.generation, m.tokens, m.cost, m.retries, m.active, m.buildInfo} {
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

// Active returns the in-flight gauge of route.
func (m *Metrics) Active(route string) prometheus.Gauge {
	if m == nil {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: "unregistered"})
	}
	return m.active.WithLabelValues(route)
}

// Observe records v seconds on o when o is set.
func Observe(o prometheus.Observer, d time.Duration) {
	if o != nil {
		o.Observe(d.Seconds())
	}
}

// observeExemplar records d on o with exemplar as its exemplar's labels, or plainly when
// exemplar is nil or o keeps no exemplars.
func observeExemplar(o prometheus.Observer, d time.Duration, exemplar prometheus.Labels) {
	if eo, ok := o.(prometheus.ExemplarObserver); ok && exemplar != nil {
		eo.ObserveWithExemplar(d.Seconds(), exemplar)
		return
	}
	Observe(o, d)
}
