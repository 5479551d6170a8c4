// Package sse is a pure Server-Sent Events codec: it turns a byte stream into events
// (Decoder) and events into bytes (AppendData), following the WHATWG EventSource
// specification for line endings and field parsing.
//
// It sits under the gateway's streaming relay, on the per-chunk hot path, so a Decoder
// allocates nothing in steady state: it reads into one buffer that grows only when an event
// does not fit and is reused afterwards, and the Event it returns aliases that buffer. The
// gateway relays Event.Raw byte for byte and inspects Data, Name and ID.
//
// Where a proxy must differ from a browser's EventSource, the Decoder keeps bytes rather than
// dropping them: an event cut short by the end of the stream (no final blank line) is still
// returned, comment-only events are returned with Comment set, and unknown fields stay in
// Raw. Bytes are never transcoded; invalid UTF-8 passes through unchanged.
//
// Concurrency: a Decoder is not safe for concurrent use; one goroutine owns it, and the slices
// of an Event are valid only until that goroutine calls Next again. AppendData and IsDone are
// pure functions, safe to call from any goroutine. Nothing in this package starts a goroutine.
//
// Imports: the standard library only. No net/http, no clocks, no metrics and no other package
// of this project, so the codec can be fuzzed in isolation.
package sse
