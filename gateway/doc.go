// Package gateway is llmgate's composition root: config loading, the public and admin HTTP
// listeners, the request path (accept, parse once, admit, batch, route, relay, account), the
// upstream client and SSE relay, and the Run lifecycle that owns every background loop.
//
// It is the only package that imports the other project packages (telemetry, tokenizer,
// gateway/sse, and later degrade and batching); they never import it.
//
// Concurrency: a Gateway serves requests concurrently. Its config is an immutable value; the
// model table it discovers is swapped whole through an atomic pointer. Every goroutine it starts
// is started and waited for by Run.
package gateway
