package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/llmgate/llmgate/telemetry"
)

// Config is the whole gateway configuration: what LoadConfig reads from YAML. A Config is a
// value; the gateway never changes one after Validate.
type Config struct {
	// Listen is the public OpenAI-compatible listener. Empty means 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// AdminListen serves /metrics and /admin/*; never the public listener. Empty means
	// 127.0.0.1:8081.
	AdminListen string `yaml:"admin_listen"`
	// MaxBodyBytes caps a request body. Zero means 32 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxResponseBytes caps a non-streaming answer from a backend; a larger one gets 502.
	// Zero means 64 MiB.
	MaxResponseBytes int64 `yaml:"max_response_bytes"`
	// ResponseMemoryBytes bounds the memory all non-streaming answers being relayed may hold
	// at once; a request that would go past it gets 503 with Retry-After. Zero means 256 MiB.
	ResponseMemoryBytes int64 `yaml:"response_memory_bytes"`
	// ShutdownDelay is how long after SIGTERM the gateway keeps serving with /readyz already
	// answering 503, so that a load balancer stops sending before the listener closes. Zero,
	// the default, closes the listener at once.
	ShutdownDelay Duration `yaml:"shutdown_delay"`
	// ShutdownGrace is how long in-flight requests and streams may run once the listener has
	// closed. Zero means 30s.
	ShutdownGrace Duration `yaml:"shutdown_grace"`
	// BodyReadTimeout bounds the time to read a whole request body, from the first byte the
	// handler asks for to the last. A body that stalls past it gets 408. Zero means 30s.
	BodyReadTimeout Duration `yaml:"body_read_timeout"`
	// BodyMemoryBytes is the memory that all request bodies being read may hold at once. A
	// request that would take it past the budget gets 503 with Retry-After. Zero means 256 MiB.
	BodyMemoryBytes int64 `yaml:"body_memory_bytes"`
	// TrustedProxies are the addresses (IPs or CIDRs) of proxies in front of the gateway whose
	// X-Forwarded-* headers are believed. Empty, the default, trusts none: the client's own
	// forwarding headers are replaced by what the gateway saw.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Upstream tunes the connections to the backends.
	Upstream UpstreamConfig `yaml:"upstream"`
	// Backends are the inference servers. At least one is required.
	Backends []BackendConfig `yaml:"backends"`
	// Models are the names clients may send. Empty means every model the backends list on
	// /v1/models, each served by every backend that lists it.
	Models []ModelConfig `yaml:"models"`
	// Telemetry configures logs.
	Telemetry telemetry.Config `yaml:"telemetry"`
}

// UpstreamConfig tunes the HTTP client that talks to backends. Zero fields take the defaults
// documented on each.
type UpstreamConfig struct {
	// ConnectTimeout bounds dialing a backend. Zero means 5s.
	ConnectTimeout Duration `yaml:"connect_timeout"`
	// FirstByteTimeout bounds the wait for a backend's response headers. A non-streaming
	// answer comes only after the whole generation, so this bounds that too. Zero means 5m.
	FirstByteTimeout Duration `yaml:"first_byte_timeout"`
	// ChunkTimeout bounds the gap between two reads of a response body (between stream
	// chunks). Zero means 60s.
	ChunkTimeout Duration `yaml:"chunk_timeout"`
	// MaxIdleConnsPerBackend is the idle keep-alive pool per backend. Zero means 1024, sized
	// for many concurrent long streams so that no request dials.
	MaxIdleConnsPerBackend int `yaml:"max_idle_conns_per_backend"`
	// IdleConnTimeout closes a keep-alive connection to a backend that has been idle this
	// long. Zero means 90s.
	IdleConnTimeout Duration `yaml:"idle_conn_timeout"`
	// HealthInterval is how often each backend's health endpoint is probed. Zero means 5s.
	HealthInterval Duration `yaml:"health_interval"`
	// DiscoveryInterval is how often backends' /v1/models are listed when models are
	// discovered rather than configured. Zero means 30s.
	DiscoveryInterval Duration `yaml:"discovery_interval"`
}

// BackendConfig is one inference server.
type BackendConfig struct {
	// Name identifies the backend in metrics, logs and the X-LLMGate-Backend header.
	Name string `yaml:"name"`
	// URL is the base URL; /v1/... is appended. A trailing /v1 is accepted and dropped.
	URL string `yaml:"url"`
	// Kind is the server's dialect: vllm, llamacpp, tgi, sglang or openai. Empty means vllm.
	Kind string `yaml:"kind"`
	// APIKeyEnv names the environment variable holding the key sent as a bearer token.
	// Empty means no key is sent.
	APIKeyEnv string `yaml:"api_key_env"`
	// MaxConcurrency caps requests in flight to this backend. Zero means no cap.
	MaxConcurrency int `yaml:"max_concurrency"`
}

// ModelConfig is one model name that clients may send.
type ModelConfig struct {
	// Name is the model name clients send.
	Name string `yaml:"name"`
	// Backends is the pool that serves it, by backend name.
	Backends []string `yaml:"backends"`
	// UpstreamModel is the name sent upstream. Empty means Name.
	UpstreamModel string `yaml:"upstream_model"`
	// DowngradeTo is the model used at degradation level 3. Empty means none.
	DowngradeTo string `yaml:"downgrade_to"`
	// MaxTokensCap caps max_tokens at degradation level 2. Zero means no cap.
	MaxTokensCap int `yaml:"max_tokens_cap"`
	// Tokenizer is the BPE encoding for estimates when a backend reports no usage:
	// cl100k_base or o200k_base. Empty means cl100k_base.
	Tokenizer string `yaml:"tokenizer"`
	// Price is what the model's tokens cost, for llmgate_cost_usd_total and the cost_usd log
	// field. Zero means free: no cost is recorded.
	Price Price `yaml:"price"`
}

// Price is a model's price per million tokens, in US dollars.
type Price struct {
	// InputPerMillion is the price of a million input (prompt) tokens.
	InputPerMillion float64 `yaml:"input_per_million"`
	// OutputPerMillion is the price of a million output (generated) tokens.
	OutputPerMillion float64 `yaml:"output_per_million"`
}

// validPrice reports whether p is a price: finite and not negative.
func validPrice(p float64) bool { return p >= 0 && !math.IsInf(p, 1) }

// cost returns the price of input and output tokens.
func (p Price) cost(input, output int) float64 {
	return (float64(input)*p.InputPerMillion + float64(output)*p.OutputPerMillion) / 1e6
}

// Duration is a time.Duration written as a string ("250ms") in YAML.
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("want a duration such as \"30s\": %w", err)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Defaults of the fields whose zero value means "the default".
const (
	defaultListen          = "127.0.0.1:8080"
	defaultAdminListen     = "127.0.0.1:8081"
	defaultMaxBodyBytes    = 32 << 20
	defaultMaxResponse     = 64 << 20
	defaultResponseMemory  = 256 << 20
	defaultShutdownGrace   = 30 * time.Second
	defaultBodyReadTimeout = 30 * time.Second
	defaultBodyMemoryBytes = 256 << 20
	defaultConnectTimeout  = 5 * time.Second
	defaultFirstByte       = 5 * time.Minute
	defaultChunkTimeout    = 60 * time.Second
	defaultIdlePerBackend  = 1024
	defaultIdleConnTime    = 90 * time.Second
	defaultHealthInterval  = 5 * time.Second
	defaultDiscovery       = 30 * time.Second
	defaultKind            = "vllm"
	defaultTokenizer       = "cl100k_base"
)

// LoadConfig reads the YAML file at path strictly (an unknown key is an error), applies the
// defaults and validates the result.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	return ParseConfig(b)
}

// ParseConfig is LoadConfig for YAML already in memory. It reports every problem at once:
// each unknown key and each invalid value, with its path.
func ParseConfig(b []byte) (Config, error) {
	keys, err := keyProblems(b)
	if err != nil {
		return Config{}, fmt.Errorf("parse config: %w", err)
	}
	problems := append(keys.unknown, keys.types...)
	doc := b
	if len(problems) > 0 {
		// Decode what is left once the nodes at fault are out, so that validation still
		// lists the problems of the rest.
		if doc, err = yaml.Marshal(keys.clean); err != nil {
			return Config{}, errors.Join(append(problems, fmt.Errorf("parse config: %w", err))...)
		}
	}
	var c Config
	// An empty document decodes to io.EOF; it goes on to Validate, which names what is missing.
	if err := yaml.NewDecoder(bytes.NewReader(doc)).Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, errors.Join(append(problems, fmt.Errorf("parse config: %w", err))...)
	}
	c = c.withDefaults()
	for _, e := range flattenErrors(c.Validate()) {
		if !keys.faulty(e.Error()) { // a value of the wrong type is reported once, as such
			problems = append(problems, e)
		}
	}
	if len(problems) > 0 {
		return Config{}, errors.Join(problems...)
	}
	return c, nil
}

// flattenErrors lists the leaves of a tree of joined errors.
func flattenErrors(err error) []error {
	if err == nil {
		return nil
	}
	j, ok := err.(interface{ Unwrap() []error }) //nolint:errorlint // walking a join, not matching
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, flattenErrors(e)...)
	}
	return out
}

func (c Config) withDefaults() Config {
	setDefault(&c.Listen, defaultListen)
	setDefault(&c.AdminListen, defaultAdminListen)
	setDefault(&c.MaxBodyBytes, defaultMaxBodyBytes)
	setDefault(&c.MaxResponseBytes, defaultMaxResponse)
	setDefault(&c.ResponseMemoryBytes, defaultResponseMemory)
	setDefault(&c.ShutdownGrace, Duration(defaultShutdownGrace))
	setDefault(&c.BodyReadTimeout, Duration(defaultBodyReadTimeout))
	setDefault(&c.BodyMemoryBytes, defaultBodyMemoryBytes)
	u := &c.Upstream
	setDefault(&u.ConnectTimeout, Duration(defaultConnectTimeout))
	setDefault(&u.FirstByteTimeout, Duration(defaultFirstByte))
	setDefault(&u.ChunkTimeout, Duration(defaultChunkTimeout))
	setDefault(&u.MaxIdleConnsPerBackend, defaultIdlePerBackend)
	setDefault(&u.IdleConnTimeout, Duration(defaultIdleConnTime))
	setDefault(&u.HealthInterval, Duration(defaultHealthInterval))
	setDefault(&u.DiscoveryInterval, Duration(defaultDiscovery))
	c.Backends = append([]BackendConfig(nil), c.Backends...)
	for i := range c.Backends {
		b := &c.Backends[i]
		setDefault(&b.Kind, defaultKind)
		b.URL = normalizeBaseURL(b.URL)
	}
	c.Models = append([]ModelConfig(nil), c.Models...)
	for i := range c.Models {
		setDefault(&c.Models[i].Tokenizer, defaultTokenizer)
	}
	c.Telemetry = c.Telemetry.WithDefaults()
	return c
}

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// normalizeBaseURL drops a trailing slash and a trailing /v1, since /v1/... is appended.
func normalizeBaseURL(s string) string {
	s = strings.TrimRight(strings.TrimSpace(s), "/")
	return strings.TrimRight(strings.TrimSuffix(s, "/v1"), "/")
}

var backendKinds = map[string]bool{"vllm": true, "llamacpp": true, "tgi": true, "sglang": true, "openai": true}
var tokenizers = map[string]bool{"cl100k_base": true, "o200k_base": true}

// Validate reports every problem in c, each starting with its path in the file.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	checkAddr := func(path, addr string) {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			add("%s: must be host:port, got %q", path, addr)
		}
	}
	checkAddr("listen", c.Listen)
	checkAddr("admin_listen", c.AdminListen)
	if c.Listen == c.AdminListen && !strings.HasSuffix(c.Listen, ":0") {
		add("admin_listen: must differ from listen, both are %q", c.Listen)
	}
	if c.MaxBodyBytes < 0 {
		add("max_body_bytes: must be > 0, got %d", c.MaxBodyBytes)
	}
	if c.MaxResponseBytes < 0 {
		add("max_response_bytes: must be > 0, got %d", c.MaxResponseBytes)
	}
	if c.ResponseMemoryBytes < 0 || c.ResponseMemoryBytes > 0 && c.ResponseMemoryBytes < c.MaxResponseBytes {
		add("response_memory_bytes: must be >= max_response_bytes (%d), got %d", c.MaxResponseBytes, c.ResponseMemoryBytes)
	}
	positive := func(path string, d Duration) {
		if d <= 0 {
			add("%s: must be > 0, got %s", path, d.D())
		}
	}
	positive("shutdown_grace", c.ShutdownGrace)
	positive("body_read_timeout", c.BodyReadTimeout)
	switch {
	case c.BodyMemoryBytes < 0:
		add("body_memory_bytes: must be > 0, got %d", c.BodyMemoryBytes)
	case c.BodyMemoryBytes < c.MaxBodyBytes:
		add("body_memory_bytes: must be >= max_body_bytes (%d), got %d", c.MaxBodyBytes, c.BodyMemoryBytes)
	}
	for i, s := range c.TrustedProxies {
		if _, err := parseTrusted(s); err != nil {
			add("trusted_proxies[%d]: must be an IP address or a CIDR such as 10.0.0.0/8, got %q", i, s)
		}
	}
	if c.ShutdownDelay < 0 {
		add("shutdown_delay: must be >= 0, got %s", c.ShutdownDelay.D())
	}
	positive("upstream.connect_timeout", c.Upstream.ConnectTimeout)
	positive("upstream.first_byte_timeout", c.Upstream.FirstByteTimeout)
	positive("upstream.chunk_timeout", c.Upstream.ChunkTimeout)
	positive("upstream.idle_conn_timeout", c.Upstream.IdleConnTimeout)
	positive("upstream.health_interval", c.Upstream.HealthInterval)
	positive("upstream.discovery_interval", c.Upstream.DiscoveryInterval)
	if c.Upstream.MaxIdleConnsPerBackend < 0 {
		add("upstream.max_idle_conns_per_backend: must be > 0, got %d", c.Upstream.MaxIdleConnsPerBackend)
	}
	errs = append(errs, c.validateBackends()...)
	errs = append(errs, c.validateModels()...)
	if err := c.Telemetry.Validate("telemetry."); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c Config) validateBackends() []error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(c.Backends) == 0 {
		add("backends: at least one backend is required")
	}
	seen := map[string]bool{}
	for i, b := range c.Backends {
		p := fmt.Sprintf("backends[%d]", i)
		checkName(add, p, b.Name, seen)
		if u, err := url.Parse(b.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("%s.url: must be an http(s) base URL such as http://127.0.0.1:8000, got %q", p, b.URL)
		}
		if !backendKinds[b.Kind] {
			add("%s.kind: must be vllm, llamacpp, tgi, sglang or openai, got %q", p, b.Kind)
		}
		if b.APIKeyEnv != "" {
			switch v, ok := os.LookupEnv(b.APIKeyEnv); {
			case !ok:
				add("%s.api_key_env: environment variable %s is not set", p, b.APIKeyEnv)
			case strings.TrimSpace(v) == "":
				add("%s.api_key_env: environment variable %s is empty", p, b.APIKeyEnv)
			}
		}
		if b.MaxConcurrency < 0 {
			add("%s.max_concurrency: must be >= 0, got %d", p, b.MaxConcurrency)
		}
	}
	return errs
}

// checkName reports the name at path p when it is empty or already in seen, then adds it.
func checkName(add func(string, ...any), p, name string, seen map[string]bool) {
	switch {
	case name == "":
		add("%s.name: must be set", p)
	case seen[name]:
		add("%s.name: %q is used twice", p, name)
	}
	seen[name] = true
}

func (c Config) validateModels() []error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	backends := map[string]bool{}
	for _, b := range c.Backends {
		backends[b.Name] = true
	}
	models := map[string]bool{}
	for _, m := range c.Models {
		models[m.Name] = true
	}
	seen := map[string]bool{}
	for i, m := range c.Models {
		p := fmt.Sprintf("models[%d]", i)
		checkName(add, p, m.Name, seen)
		if len(m.Backends) == 0 {
			add("%s.backends: at least one backend is required", p)
		}
		for j, b := range m.Backends {
			if !backends[b] {
				add("%s.backends[%d]: no backend is named %q", p, j, b)
			}
		}
		if m.DowngradeTo != "" && (!models[m.DowngradeTo] || m.DowngradeTo == m.Name) {
			add("%s.downgrade_to: must name another configured model, got %q", p, m.DowngradeTo)
		}
		if m.MaxTokensCap < 0 {
			add("%s.max_tokens_cap: must be >= 0, got %d", p, m.MaxTokensCap)
		}
		if !validPrice(m.Price.InputPerMillion) || !validPrice(m.Price.OutputPerMillion) {
			add("%s.price: prices must be finite and >= 0, got %v and %v", p, m.Price.InputPerMillion, m.Price.OutputPerMillion)
		}
		if !tokenizers[m.Tokenizer] {
			add("%s.tokenizer: must be cl100k_base or o200k_base, got %q", p, m.Tokenizer)
		}
	}
	return errs
}
