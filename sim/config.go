package sim

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"
)

// Config holds a simulator's settings. [DefaultConfig] returns llmsim's flag defaults; a zero
// Config is not valid.
type Config struct {
	// Listen is the TCP address Main listens on; port 0 picks a free port. New ignores it.
	Listen string
	// Models are the served model names, the first being the default for requests that name
	// none. Requests naming another model get 404. Must not be empty.
	Models []string
	// TTFT is the prefill time from a request's admission to its first token; zero means none.
	TTFT time.Duration
	// ITL is the inter-token time of a lone running request; it grows with load as the
	// package doc describes. Zero means tokens come as fast as they can be written.
	ITL time.Duration
	// MaxNumSeqs is how many requests may generate at once; the rest wait. Must be at least 1.
	MaxNumSeqs int
	// ErrorRate is the fraction, 0 to 1, of generation requests answered 500. Zero disables it.
	ErrorRate float64
	// MaxTokens is the output length per choice when a request sets neither max_tokens nor
	// max_completion_tokens. Must be at least 1.
	MaxTokens int
	// KVTokens is the KV-cache capacity in tokens; it is also the max_model_len that
	// /v1/models reports and that prompt plus output may not exceed. Must be at least 1.
	KVTokens int
	// EmbeddingDim is the embedding length when a request gives no dimensions. Must be at least 1.
	EmbeddingDim int
	// APIKey, when not empty, must come as "Authorization: Bearer <key>" on every /v1 request.
	APIKey string
	// Seed seeds generated text, embeddings and error-rate draws; zero is a valid seed.
	Seed uint64
	// LogLevel is the lowest level Main logs at. The zero value is Info.
	LogLevel slog.Level
	// ShutdownGrace is how long Main lets in-flight requests run on after its context is done
	// before cutting them. Zero cuts them at once.
	ShutdownGrace time.Duration
}

// DefaultConfig returns the configuration llmsim runs with when given no flags.
func DefaultConfig() Config {
	return Config{
		Listen:        "127.0.0.1:8000",
		Models:        []string{"sim-model"},
		TTFT:          50 * time.Millisecond,
		ITL:           10 * time.Millisecond,
		MaxNumSeqs:    64,
		MaxTokens:     64,
		KVTokens:      65536,
		EmbeddingDim:  384,
		LogLevel:      slog.LevelInfo,
		ShutdownGrace: 3 * time.Second,
	}
}

// Validate reports every problem of c in one error that wraps [ErrInvalidConfig]. Each
// problem names the flag that sets the field.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(c.Models) == 0 {
		bad("-model: at least one model is required")
	}
	for i, m := range c.Models {
		if strings.TrimSpace(m) == "" {
			bad("-model: name %d is empty", i+1)
		} else if slices.Index(c.Models, m) != i {
			bad("-model: %q given twice", m)
		}
	}
	if c.TTFT < 0 {
		bad("-ttft: must be >= 0, got %s", c.TTFT)
	}
	if c.ITL < 0 {
		bad("-itl: must be >= 0, got %s", c.ITL)
	}
	if c.MaxNumSeqs < 1 {
		bad("-max-num-seqs: must be >= 1, got %d", c.MaxNumSeqs)
	}
	if math.IsNaN(c.ErrorRate) || c.ErrorRate < 0 || c.ErrorRate > 1 {
		bad("-error-rate: must be between 0 and 1, got %v", c.ErrorRate)
	}
	if c.MaxTokens < 1 {
		bad("-max-tokens: must be >= 1, got %d", c.MaxTokens)
	}
	if c.KVTokens < 1 {
		bad("-kv-tokens: must be >= 1, got %d", c.KVTokens)
	}
	if c.EmbeddingDim < 1 {
		bad("-embedding-dim: must be >= 1, got %d", c.EmbeddingDim)
	}
	if c.ShutdownGrace < 0 {
		bad("-shutdown-grace: must be >= 0, got %s", c.ShutdownGrace)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w:\n%w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

// usageHeader opens llmsim's -help text.
const usageHeader = `Usage: llmsim [flags]

llmsim simulates a vLLM-like OpenAI-compatible inference server on loopback:
POST /v1/chat/completions, /v1/completions, /v1/embeddings (streaming and not),
GET /v1/models, /health, /metrics (vLLM metric names), and for tests
GET|DELETE /sim/requests (last 100 /v1 requests) and GET /sim/state.

Output text is deterministic in (seed, model, prompt, choice index); each token
is " "+word, one tiktoken token, so completion_tokens matches the text exactly.

Capacity model:
  At most -max-num-seqs requests run; the rest wait in FIFO order (counted as
  waiting) and their time to first token includes the wait. A running request
  spends -ttft in prefill, then emits one token per choice every
      itl * (1 + (running - 1) / max-num-seqs)
  so a lone request sees -itl and a full engine about twice that. KV-cache
  usage = tokens held by running requests (prompt + generated so far) /
  -kv-tokens, capped at 1. Non-streaming requests take the same time, then
  answer. A client that goes away frees its slot at once (counted cancelled).

Per-request fault injection headers:
  X-Sim-TTFT: 200ms, X-Sim-ITL: 5ms   override the timings
  X-Sim-Fail: 500                     500 with an OpenAI error body
  X-Sim-Fail: 429                     429 with Retry-After: 1
  X-Sim-Fail: disconnect-after=N      abort the connection after N content
                                      chunks (non-streaming: before the body)
  X-Sim-Fail: stall-after=N           stop after N content chunks and hold
                                      until the client leaves or 2 minutes
  X-Sim-Fail: malformed               one invalid-JSON event after the first
                                      content chunk (non-streaming: 200 with
                                      a truncated body)
  X-Sim-Fail: error-event-after=N     in-band error event then [DONE] after
                                      N content chunks (non-streaming: 500)
  X-Sim-Usage: omit                   no usage anywhere, even when asked
  X-Sim-Usage: finish                 usage on the finish chunk, always

Flags:
`

// modelFlag is the repeatable -model flag; its first use replaces the default list.
type modelFlag struct {
	names *[]string
	set   bool
}

// String returns the models as a comma-separated list.
func (m *modelFlag) String() string {
	if m == nil || m.names == nil {
		return ""
	}
	return strings.Join(*m.names, ",")
}

// Set adds one model name.
func (m *modelFlag) Set(v string) error {
	if strings.TrimSpace(v) == "" {
		return errors.New("model name is empty")
	}
	if !m.set {
		*m.names, m.set = nil, true
	}
	*m.names = append(*m.names, v)
	return nil
}

// parseFlags turns llmsim's arguments into a validated Config. -help prints the usage text to
// stderr and returns [flag.ErrHelp]; a bad flag prints the usage text and returns the error.
func parseFlags(args []string, stderr io.Writer) (Config, error) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("llmsim", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // The error goes back to the caller; only the usage text is printed.
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHeader)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "`address` to listen on (port 0 picks a free port)")
	fs.Var(&modelFlag{names: &cfg.Models}, "model", "model `name` to serve; repeat for several")
	fs.DurationVar(&cfg.TTFT, "ttft", cfg.TTFT, "prefill time before the first token")
	fs.DurationVar(&cfg.ITL, "itl", cfg.ITL, "base inter-token time of a lone request")
	fs.IntVar(&cfg.MaxNumSeqs, "max-num-seqs", cfg.MaxNumSeqs, "requests that may generate at once; the rest wait FIFO")
	fs.Float64Var(&cfg.ErrorRate, "error-rate", cfg.ErrorRate, "`fraction` (0..1) of generation requests answered 500")
	fs.IntVar(&cfg.MaxTokens, "max-tokens", cfg.MaxTokens, "output tokens per choice when the request sets no max_tokens")
	fs.IntVar(&cfg.KVTokens, "kv-tokens", cfg.KVTokens, "KV-cache capacity in tokens (also max_model_len)")
	fs.IntVar(&cfg.EmbeddingDim, "embedding-dim", cfg.EmbeddingDim, "embedding length when the request gives no dimensions")
	fs.StringVar(&cfg.APIKey, "api-key", "", "API `key`; when set, every /v1 request needs \"Authorization: Bearer <key>\" (else 401)")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed for generated text, embeddings and error draws")
	fs.TextVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "log `level`: debug, info, warn or error")
	fs.DurationVar(&cfg.ShutdownGrace, "shutdown-grace", cfg.ShutdownGrace, "how long in-flight requests may finish on shutdown")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, err
		}
		return Config{}, fmt.Errorf("parse flags: %w", err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("parse flags: unexpected argument %q", fs.Arg(0))
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}
