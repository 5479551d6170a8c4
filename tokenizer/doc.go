// Package tokenizer counts tokens for prompts, chat messages and streamed text with OpenAI's
// BPE encodings (cl100k_base, o200k_base, p50k_base, r50k_base), so that the gateway can
// estimate usage when an upstream reports none.
//
// The counts are estimates for self-hosted models, whose own tokenizers differ from OpenAI's:
// EncodingForModel maps OpenAI model names to their encoding and every other name to
// cl100k_base. Text is always counted literally: a special token such as "<|endoftext|>" in
// the input is encoded as ordinary text, never rejected and never counted as one token.
//
// For a stream, count each delta as it arrives and add the counts up (Counter.Count or
// Counter.CountBytes). Inference servers emit roughly one token per delta, so the sum follows
// the server's own count more closely than counting the joined text once at the end.
//
// Cost and exactness: tiktoken-go's byte-pair merge is quadratic in the length of a piece, a
// run without whitespace is one piece (80 KB of "x" took 3 s), and the texts counted here are
// client-controlled (prompts up to the body limit, streamed output). So Count,
// CountBytes and CountMessages encode text in segments of at most 1 KiB, cut just before a
// whitespace character when the segment has one (preferably where the encodings' patterns
// start a new piece anyway, so the cut changes nothing) and otherwise at a UTF-8 rune
// boundary, and they encode at most 1 MiB per call; the rest is estimated linearly by bytes
// from the tokens per byte of what was encoded. Counts are therefore exact below 1 KiB,
// segment-exact up to 1 MiB (equal to tiktoken's count for prose and code, off by about one
// token per cut inside a 1 KiB run without whitespace) and estimated beyond. That is fine for
// the gateway's usage estimates, and llmsim's prompts are small.
//
// BPE data: the encodings come from the files embedded in github.com/pkoukk/tiktoken-go-loader,
// never from the network. The first New call in a process installs that offline loader with
// the process-global tiktoken.SetBpeLoader, behind a sync.Once. Each encoding is then loaded
// and compiled at most once per process (it takes hundreds of milliseconds), also behind a
// sync.Once, and every Counter for that encoding shares it. These once-guarded caches are the
// package's only mutable package-level state; no other code in the process should call
// tiktoken.SetBpeLoader or tiktoken.GetEncoding concurrently with this package.
//
// Concurrency: a Counter is safe for concurrent use by any number of goroutines. Nothing in
// this package starts a goroutine.
//
// Imports: no other package of this project, no HTTP and no metrics.
package tokenizer
