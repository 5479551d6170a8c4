package telemetry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// OTLP transport protocols, the values of TracingConfig.Protocol and OTEL_EXPORTER_OTLP_PROTOCOL.
const (
	ProtocolGRPC         = "grpc"
	ProtocolHTTPProtobuf = "http/protobuf"
)

// Defaults that apply when neither the config nor the environment says otherwise.
const (
	// DefaultProtocol is the OTLP protocol when none is configured. The OpenTelemetry
	// specification says SDKs SHOULD default to http/protobuf, as OpenTelemetry's own Go
	// autoexport does.
	DefaultProtocol = ProtocolHTTPProtobuf
	// DefaultServiceName is the resource's service.name when none is configured.
	DefaultServiceName = "llmgate"
	// DefaultExportTimeout bounds one export when none is configured (the specification's 10s).
	DefaultExportTimeout = 10 * time.Second

	defaultGRPCEndpoint = "http://localhost:4317"
	defaultHTTPEndpoint = "http://localhost:4318"
	httpTracesPath      = "/v1/traces"
)

// TracingConfig is the telemetry.tracing section: OTLP trace export. Every field's zero value
// means "take it from the standard OTEL_* environment variables, else the default"; a value
// set here wins over the environment. The zero value exports nothing unless an OTLP endpoint
// variable is set.
type TracingConfig struct {
	// Enabled forces export on (true) or off (false). Unset means on when an OTLP endpoint is
	// given (Endpoint, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT) and
	// neither OTEL_SDK_DISABLED=true nor an OTEL_TRACES_EXPORTER without otlp turns it off.
	Enabled *bool `yaml:"enabled"`
	// Endpoint is the collector: host:port ("127.0.0.1:4317") or a base URL
	// ("http://collector:4318"). For http/protobuf, /v1/traces is appended to the URL's path.
	// An http:// URL means plaintext, https:// TLS; host:port means TLS unless Insecure.
	// Empty means the OTLP endpoint variables, else localhost:4317 (grpc) or :4318 (http).
	Endpoint string `yaml:"endpoint"`
	// Protocol is grpc or http/protobuf. Empty means OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or
	// OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf.
	Protocol string `yaml:"protocol"`
	// Insecure sends plaintext to an Endpoint written as host:port. False means TLS there
	// unless OTEL_EXPORTER_OTLP_(TRACES_)INSECURE=true. A URL's scheme decides for itself.
	Insecure bool `yaml:"insecure"`
	// HeadersEnv maps a header sent with every export to the environment variable holding
	// its value, so that secrets stay out of the file. They are added to (and win over) the
	// OTEL_EXPORTER_OTLP_(TRACES_)HEADERS. Empty means only those.
	HeadersEnv map[string]string `yaml:"headers_env"`
	// SamplingRatio is the fraction of new traces sampled, 0 to 1. Unset means
	// OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG, else 1 (every trace).
	SamplingRatio *float64 `yaml:"sampling_ratio"`
	// ParentBased makes a request that arrives with a traceparent follow its caller's
	// sampling decision. Unset means whatever OTEL_TRACES_SAMPLER says, else true.
	ParentBased *bool `yaml:"parent_based"`
	// ServiceName is the resource's service.name. Empty means OTEL_SERVICE_NAME, else
	// service.name in OTEL_RESOURCE_ATTRIBUTES, else llmgate.
	ServiceName string `yaml:"service_name"`
	// Timeout bounds one export. Zero means OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT, else 10s.
	Timeout time.Duration `yaml:"timeout"`
}

// WithDefaults returns c with its own copy of HeadersEnv. It fills in no other field: an unset
// field defers to the environment, which NewTracing reads, and then to the defaults above.
func (c TracingConfig) WithDefaults() TracingConfig {
	c.HeadersEnv = maps.Clone(c.HeadersEnv)
	return c
}

// Validate reports every problem in c, each prefixed with its path under prefix (such as
// "telemetry.tracing."), including a headers_env variable that is not set.
func (c TracingConfig) Validate(prefix string) error {
	return c.validate(prefix, os.LookupEnv)
}

func (c TracingConfig) validate(prefix string, lookupEnv func(string) (string, bool)) error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(prefix+format, a...)) }
	switch c.Protocol {
	case "", ProtocolGRPC, ProtocolHTTPProtobuf:
	default:
		add("protocol: must be grpc or http/protobuf, got %q", c.Protocol)
	}
	if c.Endpoint != "" {
		u, err := parseEndpoint(c.Endpoint)
		switch {
		case err != nil:
			add("endpoint: %v", err)
		case c.Insecure && u.Scheme == "https":
			add("endpoint: insecure is true but the endpoint %q asks for TLS", c.Endpoint)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.HeadersEnv)) {
		env := c.HeadersEnv[name]
		if !validHeaderName(name) {
			add("headers_env: %q is not a valid header name", name)
		}
		switch v, set := lookupEnv(env); {
		case env == "":
			add("headers_env.%s: must name an environment variable", name)
		case !set:
			add("headers_env.%s: environment variable %s is not set", name, env)
		case v == "":
			add("headers_env.%s: environment variable %s is empty", name, env)
		}
	}
	if r := c.SamplingRatio; r != nil && !(*r >= 0 && *r <= 1) {
		add("sampling_ratio: must be between 0 and 1, got %v", *r)
	}
	if c.Timeout < 0 {
		add("timeout: must be >= 0, got %s", c.Timeout)
	}
	return errors.Join(errs...)
}

// validHeaderName reports whether s is an HTTP token, as a header name must be.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

// parseEndpoint parses host:port or an http(s) URL with a host.
func parseEndpoint(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return nil, fmt.Errorf("must be host:port or an http(s) URL, got %q", s)
		}
		return &url.URL{Host: s}, nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("must be host:port or an http(s) URL, got %q", s)
	}
	return u, nil
}

// Tracing owns the gateway's tracer provider: the OTLP exporter and its batch span processor
// when export is on, a no-op provider when it is off. It is safe for concurrent use.
type Tracing struct {
	provider trace.TracerProvider
	sdk      *sdktrace.TracerProvider // nil when off
	describe string

	shutdown sync.Once
	err      error
}

// NewTracing resolves cfg against the environment read through getenv (nil means os.Getenv)
// and, when export is on, creates the OTLP exporter, a batch span processor and a tracer
// provider whose resource carries service.name and service.version (version). It connects
// lazily: an unreachable collector is not an error here. It returns an error for a value it
// cannot use, in the config or in an OTEL_* variable. It sets no OpenTelemetry global.
func NewTracing(ctx context.Context, cfg TracingConfig, getenv func(string) string, version string) (*Tracing, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	s, err := resolveTracing(cfg, getenv)
	if err != nil {
		return nil, fmt.Errorf("configure tracing: %w", err)
	}
	if !s.enabled {
		return &Tracing{provider: noop.NewTracerProvider(), describe: s.describe()}, nil
	}
	exp, err := s.exporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("create OTLP trace exporter: %w", err)
	}
	attrs := append(s.resource, semconv.ServiceName(s.serviceName), semconv.ServiceVersion(version))
	res, err := resource.New(ctx, resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithTelemetrySDK(), resource.WithAttributes(attrs...))
	if err != nil {
		_ = exp.Shutdown(ctx) // nothing was exported yet; the resource error is the one to report
		return nil, fmt.Errorf("build trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(s.sampler.build()),
	)
	return &Tracing{provider: tp, sdk: tp, describe: s.describe()}, nil
}

// Provider returns the tracer provider to instrument with: a no-op one when export is off, so
// that starting and ending a span costs next to nothing.
func (t *Tracing) Provider() trace.TracerProvider { return t.provider }

// Propagator returns the W3C trace-context propagator, which carries traceparent in from
// clients and out to backends whether export is on or off.
func (t *Tracing) Propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

// Enabled reports whether spans are exported.
func (t *Tracing) Enabled() bool { return t.sdk != nil }

// Describe returns one line for the start-up log: "off" and why, or the protocol, endpoint,
// sampler and service name. It never contains header values.
func (t *Tracing) Describe() string { return t.describe }

// Shutdown flushes the spans still queued and stops the exporter, waiting at most until ctx
// ends. Later calls return the first call's result.
func (t *Tracing) Shutdown(ctx context.Context) error {
	t.shutdown.Do(func() {
		if t.sdk != nil {
			if err := t.sdk.Shutdown(ctx); err != nil {
				t.err = fmt.Errorf("shut down tracing: %w", err)
			}
		}
	})
	return t.err
}

// tracingSettings is a TracingConfig resolved against the environment.
type tracingSettings struct {
	enabled     bool
	offReason   string // why export is off, for Describe
	protocol    string
	endpoint    *url.URL // full URL: scheme decides TLS; for http the path is the traces path
	headers     map[string]string
	sampler     samplerSpec
	serviceName string
	resource    []attribute.KeyValue // from OTEL_RESOURCE_ATTRIBUTES
	timeout     time.Duration
}

// samplerSpec is a sampler by its specification name.
type samplerSpec struct {
	root        string // always_on, always_off or traceidratio
	ratio       float64
	parentBased bool
}

func (s samplerSpec) String() string {
	name := s.root
	if s.parentBased {
		name = "parentbased_" + name
	}
	if s.root == "traceidratio" {
		name += "(" + strconv.FormatFloat(s.ratio, 'g', -1, 64) + ")"
	}
	return name
}

func (s samplerSpec) build() sdktrace.Sampler {
	var root sdktrace.Sampler
	switch s.root {
	case "always_off":
		root = sdktrace.NeverSample()
	case "traceidratio":
		root = sdktrace.TraceIDRatioBased(s.ratio)
	default:
		root = sdktrace.AlwaysSample()
	}
	if s.parentBased {
		return sdktrace.ParentBased(root)
	}
	return root
}

func (s tracingSettings) describe() string {
	if !s.enabled {
		return "off (" + s.offReason + ")"
	}
	u := *s.endpoint
	u.User = nil
	var b strings.Builder
	fmt.Fprintf(&b, "otlp %s %s sampler=%s service.name=%s timeout=%s", s.protocol, u.String(),
		s.sampler, s.serviceName, s.timeout)
	if len(s.headers) > 0 {
		fmt.Fprintf(&b, " headers=%s", strings.Join(slices.Sorted(maps.Keys(s.headers)), ","))
	}
	return b.String()
}

// exporter creates the OTLP exporter of s.protocol. Every setting is passed explicitly, so
// that what NewTracing resolved wins over what the exporters would read from os.Getenv.
func (s tracingSettings) exporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	if s.protocol == ProtocolGRPC {
		return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(s.endpoint.String()),
			otlptracegrpc.WithHeaders(s.headers), otlptracegrpc.WithTimeout(s.timeout))
	}
	return otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(s.endpoint.String()),
		otlptracehttp.WithHeaders(s.headers), otlptracehttp.WithTimeout(s.timeout))
}

// envTraces returns the traces-specific variable OTEL_EXPORTER_OTLP_TRACES_<name> if set,
// else the generic OTEL_EXPORTER_OTLP_<name>, and which one it read.
func envTraces(getenv func(string) string, name string) (value, variable string) {
	for _, v := range []string{"OTEL_EXPORTER_OTLP_TRACES_" + name, "OTEL_EXPORTER_OTLP_" + name} {
		if val := strings.TrimSpace(getenv(v)); val != "" {
			return val, v
		}
	}
	return "", ""
}

// resolveTracing applies the precedence: config, then the OTEL_* variables, then the defaults.
func resolveTracing(cfg TracingConfig, getenv func(string) string) (tracingSettings, error) {
	var s tracingSettings
	lookup := func(k string) (string, bool) { v := getenv(k); return v, v != "" }
	if err := cfg.validate("telemetry.tracing.", lookup); err != nil {
		return s, err
	}
	envEndpoint, endpointVar := envTraces(getenv, "ENDPOINT")
	switch {
	case cfg.Enabled != nil:
		s.enabled, s.offReason = *cfg.Enabled, "telemetry.tracing.enabled is false"
	case strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true"):
		s.offReason = "OTEL_SDK_DISABLED=true"
	case !exporterListHasOTLP(getenv("OTEL_TRACES_EXPORTER")):
		s.offReason = fmt.Sprintf("OTEL_TRACES_EXPORTER=%s", strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")))
	case cfg.Endpoint == "" && envEndpoint == "":
		s.offReason = "no OTLP endpoint configured"
	default:
		s.enabled = true
	}
	if !s.enabled {
		return s, nil
	}
	var errs []error
	s.protocol = cfg.Protocol
	if s.protocol == "" {
		var v string
		if s.protocol, v = envTraces(getenv, "PROTOCOL"); s.protocol == "" {
			s.protocol = DefaultProtocol
		} else if s.protocol != ProtocolGRPC && s.protocol != ProtocolHTTPProtobuf {
			errs = append(errs, fmt.Errorf("%s: must be grpc or http/protobuf, got %q", v, s.protocol))
		}
	}
	var err error
	if s.endpoint, err = resolveEndpoint(cfg, s.protocol, envEndpoint, endpointVar, getenv); err != nil {
		errs = append(errs, err)
	}
	if s.headers, err = resolveHeaders(cfg, getenv); err != nil {
		errs = append(errs, err)
	}
	if s.sampler, err = resolveSampler(cfg, getenv); err != nil {
		errs = append(errs, err)
	}
	if s.resource, err = parseResourceAttributes(getenv("OTEL_RESOURCE_ATTRIBUTES")); err != nil {
		errs = append(errs, err)
	}
	s.serviceName = cfg.ServiceName
	if s.serviceName == "" {
		s.serviceName = strings.TrimSpace(getenv("OTEL_SERVICE_NAME"))
	}
	if s.serviceName == "" {
		for _, kv := range s.resource {
			if kv.Key == semconv.ServiceNameKey {
				s.serviceName = kv.Value.AsString()
			}
		}
	}
	if s.serviceName == "" {
		s.serviceName = DefaultServiceName
	}
	s.timeout = cfg.Timeout
	if s.timeout == 0 {
		s.timeout = DefaultExportTimeout
		if v, name := envTraces(getenv, "TIMEOUT"); v != "" {
			ms, err := strconv.Atoi(v)
			if err != nil || ms <= 0 {
				errs = append(errs, fmt.Errorf("%s: must be a positive number of milliseconds, got %q", name, v))
			} else {
				s.timeout = time.Duration(ms) * time.Millisecond
			}
		}
	}
	return s, errors.Join(errs...)
}

// exporterListHasOTLP reads OTEL_TRACES_EXPORTER, a comma-separated list whose default is
// otlp: none anywhere in it, or no otlp, means this gateway exports nothing.
func exporterListHasOTLP(v string) bool {
	if strings.TrimSpace(v) == "" {
		return true
	}
	otlp := false
	for e := range strings.SplitSeq(v, ",") {
		switch strings.TrimSpace(e) {
		case "none":
			return false
		case "otlp":
			otlp = true
		}
	}
	return otlp
}

// resolveEndpoint returns the full URL to export to. The config's endpoint and
// OTEL_EXPORTER_OTLP_ENDPOINT are base URLs (/v1/traces is appended for http/protobuf);
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as given.
func resolveEndpoint(cfg TracingConfig, protocol, envEndpoint, envVar string, getenv func(string) string) (*url.URL, error) {
	raw, name, base, insecure := cfg.Endpoint, "telemetry.tracing.endpoint", true, cfg.Insecure
	if raw == "" {
		raw, name = envEndpoint, envVar
		base = envVar != "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
		v, _ := envTraces(getenv, "INSECURE")
		insecure = strings.EqualFold(v, "true")
	}
	if raw == "" {
		raw, name = defaultHTTPEndpoint, "default endpoint"
		if protocol == ProtocolGRPC {
			raw = defaultGRPCEndpoint
		}
	}
	u, err := parseEndpoint(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if u.Scheme == "" {
		u.Scheme = "https"
		if insecure {
			u.Scheme = "http"
		}
	}
	if protocol == ProtocolHTTPProtobuf && base && !strings.HasSuffix(u.Path, httpTracesPath) {
		u.Path = strings.TrimSuffix(u.Path, "/") + httpTracesPath
	}
	if protocol == ProtocolHTTPProtobuf && u.Path == "" {
		u.Path = "/"
	}
	return u, nil
}

// resolveHeaders merges OTEL_EXPORTER_OTLP_(TRACES_)HEADERS with the config's headers_env,
// which win.
func resolveHeaders(cfg TracingConfig, getenv func(string) string) (map[string]string, error) {
	h := map[string]string{}
	var errs []error
	if v, name := envTraces(getenv, "HEADERS"); v != "" {
		for i, pair := range strings.Split(v, ",") {
			k, val, ok := strings.Cut(pair, "=")
			k = strings.TrimSpace(k)
			dec, err := url.PathUnescape(strings.TrimSpace(val))
			if !ok || !validHeaderName(k) || err != nil {
				// Only the entry's position: an entry without "=" may be a secret whole.
				errs = append(errs, fmt.Errorf("%s: want name=value pairs separated by commas, entry %d is not one", name, i+1))
				continue
			}
			h[k] = dec
		}
	}
	for k, env := range cfg.HeadersEnv {
		if v := getenv(env); v != "" {
			h[k] = v
		}
	}
	return h, errors.Join(errs...)
}

// resolveSampler starts from OTEL_TRACES_SAMPLER (default parentbased_always_on) and applies
// the config's sampling_ratio and parent_based over it.
func resolveSampler(cfg TracingConfig, getenv func(string) string) (samplerSpec, error) {
	s := samplerSpec{root: "always_on", ratio: 1, parentBased: true}
	name := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER")))
	arg := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG"))
	if name != "" {
		root, pb := strings.CutPrefix(name, "parentbased_")
		switch root {
		case "always_on", "always_off", "traceidratio":
		default:
			return s, fmt.Errorf("OTEL_TRACES_SAMPLER: must be always_on, always_off, traceidratio or parentbased_ one of those, got %q", name)
		}
		s.root, s.parentBased = root, pb
		if root == "traceidratio" && arg != "" {
			r, err := strconv.ParseFloat(arg, 64)
			if err != nil || math.IsNaN(r) || r < 0 || r > 1 {
				return s, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG: must be a ratio between 0 and 1, got %q", arg)
			}
			s.ratio = r
		}
	}
	if cfg.SamplingRatio != nil {
		s.root, s.ratio = "traceidratio", *cfg.SamplingRatio
	}
	if cfg.ParentBased != nil {
		s.parentBased = *cfg.ParentBased
	}
	return s, nil
}

// parseResourceAttributes parses OTEL_RESOURCE_ATTRIBUTES: key=value pairs separated by
// commas, values percent-encoded.
func parseResourceAttributes(v string) ([]attribute.KeyValue, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var kvs []attribute.KeyValue
	var errs []error
	for pair := range strings.SplitSeq(v, ",") {
		k, val, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		dec, err := url.PathUnescape(strings.TrimSpace(val))
		if !ok || k == "" || err != nil {
			errs = append(errs, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: want key=value pairs separated by commas, got %q", strings.TrimSpace(pair)))
			continue
		}
		kvs = append(kvs, attribute.String(k, dec))
	}
	return kvs, errors.Join(errs...)
}
