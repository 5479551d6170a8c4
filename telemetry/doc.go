// Package telemetry holds what the gateway uses to explain itself: the Prometheus registry
// constructor, the request and stream metrics (RED, time to first token, inter-token latency,
// tokens), the metric namespace and buckets, and the slog logger setup.
//
// Concurrency: Metrics and the observers it hands out are safe for concurrent use. Nothing here
// starts a goroutine.
//
// Imports: no other package of this project. Metrics register on an injected
// prometheus.Registerer; nothing registers in init or on the default registry.
package telemetry
