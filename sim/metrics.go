package sim

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Finish reasons, as the finished_reason label and the API's finish_reason carry them.
const (
	finishStop   = "stop"
	finishLength = "length"
	finishAbort  = "abort"
)

// Buckets follow vLLM's, with sub-10 ms buckets added for fast simulated timings.
var (
	ttftBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5,
		0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560}
	itlBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3,
		0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80}
	e2eBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20,
		30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680}
)

// metrics holds the per-model children of vLLM's request metrics, resolved once.
type metrics struct {
	models map[string]*modelMetrics
}

// modelMetrics are one model's metric children.
type modelMetrics struct {
	ttft, itl, e2e   prometheus.Observer
	prompt, generate prometheus.Counter
	success          map[string]prometheus.Counter // by finish reason
}

// newMetrics registers vLLM's metrics for models on reg; the gauges read eng at scrape time.
func newMetrics(reg prometheus.Registerer, models []string, eng *engine) (*metrics, error) {
	lm := []string{"model_name"}
	ttft := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vllm:time_to_first_token_seconds",
		Help: "Histogram of time to first token in seconds, queue wait included.", Buckets: ttftBuckets}, lm)
	itl := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vllm:inter_token_latency_seconds",
		Help: "Histogram of inter-token latency in seconds.", Buckets: itlBuckets}, lm)
	e2e := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vllm:e2e_request_latency_seconds",
		Help: "Histogram of end-to-end request latency in seconds.", Buckets: e2eBuckets}, lm)
	prompt := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vllm:prompt_tokens_total",
		Help: "Number of prefill tokens processed."}, lm)
	generate := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vllm:generation_tokens_total",
		Help: "Number of generation tokens processed."}, lm)
	success := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vllm:request_success_total",
		Help: "Count of finished requests by finish reason."}, []string{"model_name", "finished_reason"})
	for _, c := range []prometheus.Collector{ttft, itl, e2e, prompt, generate, success, newEngineCollector(eng)} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register sim metrics: %w", err)
		}
	}
	m := &metrics{models: make(map[string]*modelMetrics, len(models))}
	for _, name := range models {
		mm := &modelMetrics{
			ttft:     ttft.WithLabelValues(name),
			itl:      itl.WithLabelValues(name),
			e2e:      e2e.WithLabelValues(name),
			prompt:   prompt.WithLabelValues(name),
			generate: generate.WithLabelValues(name),
			success:  make(map[string]prometheus.Counter, 3),
		}
		for _, r := range []string{finishStop, finishLength, finishAbort} {
			mm.success[r] = success.WithLabelValues(name, r)
		}
		m.models[name] = mm
	}
	return m, nil
}

// engineCollector exports the engine's load as vLLM's scheduler gauges at scrape time.
type engineCollector struct {
	eng                         *engine
	running, waiting, kv, gpuKV *prometheus.Desc
}

// newEngineCollector returns a collector of eng's gauges.
func newEngineCollector(eng *engine) *engineCollector {
	lm := []string{"model_name"}
	return &engineCollector{
		eng: eng,
		running: prometheus.NewDesc("vllm:num_requests_running",
			"Number of requests generating.", lm, nil),
		waiting: prometheus.NewDesc("vllm:num_requests_waiting",
			"Number of requests waiting for a slot.", lm, nil),
		kv: prometheus.NewDesc("vllm:kv_cache_usage_perc",
			"KV-cache usage, 0 to 1; engine-wide.", lm, nil),
		gpuKV: prometheus.NewDesc("vllm:gpu_cache_usage_perc",
			"KV-cache usage, 0 to 1; older name of vllm:kv_cache_usage_perc.", lm, nil),
	}
}

// Describe sends the collector's descriptors.
func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.running
	ch <- c.waiting
	ch <- c.kv
	ch <- c.gpuKV
}

// Collect sends the engine's current gauges, one set per model.
func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	loads, kv := c.eng.modelLoads()
	for m, l := range loads {
		ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, float64(l.running), m)
		ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.GaugeValue, float64(l.waiting), m)
		ch <- prometheus.MustNewConstMetric(c.kv, prometheus.GaugeValue, kv, m)
		ch <- prometheus.MustNewConstMetric(c.gpuKV, prometheus.GaugeValue, kv, m)
	}
}
