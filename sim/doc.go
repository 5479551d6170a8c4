// Package sim is a simulated vLLM-like inference server: the upstream behind llmsim, the
// gateway's tests, demos and load tests that have no GPUs.
//
// A [Server] is an [net/http.Handler] that speaks the OpenAI API as vLLM serves it:
// POST /v1/chat/completions, /v1/completions and /v1/embeddings (streaming and not), GET
// /v1/models, GET /health, and GET /metrics with vLLM's metric names. It also serves
// GET and DELETE /sim/requests (the last 100 /v1 requests as received) and GET /sim/state
// (running, waiting, KV-cache usage, completed, cancelled, failed) for tests. [Main] is the
// whole llmsim program: flags, listener, graceful shutdown.
//
// # Output
//
// Generated text is a deterministic function of the seed, the model, the prompt text and the
// choice index. Every token is " "+word, with the words chosen so that " "+word is one token in
// both cl100k_base and o200k_base; the tiktoken count of the text therefore equals
// completion_tokens exactly. prompt_tokens is counted with cl100k_base. Embeddings are
// deterministic unit-length vectors drawn from the seed, the model and the input text.
//
// # Streams
//
// A streamed chat completion sends its headers and one role chunk per choice at once, before
// the request waits for a slot; then each content chunk carries exactly one token of one
// choice (choices interleave step by step, each chunk naming its index); then one finish
// chunk per choice with an empty delta; then, if stream_options.include_usage asked, one
// usage-only chunk with "choices": []; then data: [DONE]. Text completions have no role
// chunk and put the token in choices[].text. stream_options.continuous_usage_stats puts the
// running totals, summed over all choices, on every chunk.
//
// # Capacity model
//
// At most Config.MaxNumSeqs requests run at once; the rest wait in FIFO order (reported as
// waiting) and their time to first token includes the wait. An admitted request spends
// Config.TTFT in prefill, then emits one token per choice every
//
//	ITL × (1 + (running − 1) / MaxNumSeqs)
//
// where running is read at each step, so a lone request sees exactly ITL and a full engine
// about twice it. KV-cache usage is the tokens held by running requests (prompt plus tokens
// generated so far, all choices) divided by Config.KVTokens, capped at 1; it is engine-wide and
// reported under every model name. Prefill time does not depend on prompt length, and KV usage
// never blocks admission. Non-streaming requests take the same simulated time, then answer.
// Embedding requests take a slot for the prefill time only. A client that goes away frees its
// slot at once and counts as cancelled.
//
// # Fault injection
//
// Request headers change one request: X-Sim-TTFT and X-Sim-ITL (Go durations) replace the base
// timings; X-Sim-Fail is one of 500, 429, disconnect-after=N, stall-after=N, malformed or
// error-event-after=N; X-Sim-Usage is omit or finish. See the llmsim -help text for details.
// A fault "after N" fires when the next token is due after N content chunks have gone out
// (N=0: when the first token is due); if the answer has fewer than N chunks it never fires.
// Aborted and cancelled requests end with the connection cut, never with data: [DONE].
//
// # Concurrency
//
// A Server is safe for concurrent use. It starts no goroutines: each request is generated in
// its own handler goroutine, paced by one timer, and shared state sits behind mutexes. [Main]
// owns the one goroutine that runs the HTTP server and waits for it before returning.
//
// # Imports
//
// sim may import the project package tokenizer and no other package of this module; the
// gateway's non-test code must never import sim.
package sim
