// Package telemetry holds what the gateway uses to explain itself: the Prometheus registry
// constructor, the request and stream metrics (RED, time to first token, inter-token latency,
// tokens, cost), the per-request telemetry object (Request: the resolved observers and the
// spans of one request), the metric namespace and buckets, OTLP trace export (Tracing), the
// slog logger setup, the asynchronous log writer, and the content audit log with its
// redaction and size-rotated file.
//
// Concurrency: Metrics and the observers it hands out, Tracing, LogWriter, AuditLog and
// RotatingFile are safe for concurrent use; a Request belongs to its request's goroutine.
// LogWriter and AuditLog each have a blocking Run(ctx) that their owner runs and waits for.
// When trace export is on, the OpenTelemetry SDK's batch span processor runs a goroutine of
// its own, which Tracing.Shutdown flushes and ends.
//
// Imports: no other package of this project. Metrics register on an injected
// prometheus.Registerer; nothing registers in init or on the default registry.
package telemetry
