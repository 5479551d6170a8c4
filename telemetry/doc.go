// Package telemetry holds what the gateway uses to explain itself: the Prometheus registry
// constructor, the request and stream metrics (RED, time to first token, inter-token latency,
// tokens), the metric namespace and buckets, the slog logger setup, the asynchronous log
// writer, and the content audit log with its redaction and size-rotated file.
//
// Concurrency: Metrics and the observers it hands out, LogWriter, AuditLog and RotatingFile
// are safe for concurrent use. Nothing here starts a goroutine of its own: LogWriter and
// AuditLog each have a blocking Run(ctx) that their owner runs and waits for.
//
// Imports: no other package of this project. Metrics register on an injected
// prometheus.Registerer; nothing registers in init or on the default registry.
package telemetry
