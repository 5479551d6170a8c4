package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Namespace prefixes every metric the gateway exports.
const Namespace = "llmgate"

// NewRegistry returns a fresh registry with the Go runtime and process collectors on it.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Prefixed wraps reg so that every metric registered through it is named llmgate_….
func Prefixed(reg prometheus.Registerer) prometheus.Registerer {
	return prometheus.WrapRegistererWithPrefix(Namespace+"_", reg)
}
