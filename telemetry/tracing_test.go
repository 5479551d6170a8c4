package telemetry

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TestMain checks that no test leaves a goroutine behind: the OTLP exporters and the test
// receiver start some.

// envMap returns a getenv that reads m.
func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func ptr[T any](v T) *T { return &v }

func TestResolveTracing(t *testing.T) {
	t.Parallel()
	const (
		ep       = "OTEL_EXPORTER_OTLP_ENDPOINT"
		tracesEP = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
		proto    = "OTEL_EXPORTER_OTLP_PROTOCOL"
		sampler  = "OTEL_TRACES_SAMPLER"
		arg      = "OTEL_TRACES_SAMPLER_ARG"
	)
	type want struct {
		on       bool
		protocol string
		endpoint string
		sampler  string
		service  string
		timeout  time.Duration
		headers  map[string]string
	}
	// on returns the settings of an enabled exporter with every default but the endpoint.
	on := func(protocol, endpoint string) want {
		return want{on: true, protocol: protocol, endpoint: endpoint, sampler: "parentbased_always_on",
			service: "llmgate", timeout: 10 * time.Second}
	}
	with := func(w want, f func(*want)) want { f(&w); return w }
	const httpC = "http://c:4318/v1/traces"

	cases := []struct {
		name string
		cfg  TracingConfig
		env  map[string]string
		want want
	}{
		// On or off.
		{"nothing set is off", TracingConfig{}, nil, want{}},
		{"endpoint variable turns it on, http/protobuf by default", TracingConfig{},
			map[string]string{ep: "http://c:4318"}, on("http/protobuf", httpC)},
		{"traces endpoint variable turns it on", TracingConfig{},
			map[string]string{tracesEP: "http://c:4318/v1/traces"}, on("http/protobuf", httpC)},
		{"OTEL_TRACES_EXPORTER=none turns it off", TracingConfig{},
			map[string]string{ep: "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, want{}},
		{"OTEL_TRACES_EXPORTER without otlp is off", TracingConfig{},
			map[string]string{ep: "http://c:4318", "OTEL_TRACES_EXPORTER": "console"}, want{}},
		{"OTEL_TRACES_EXPORTER=otlp keeps it on", TracingConfig{},
			map[string]string{ep: "http://c:4318", "OTEL_TRACES_EXPORTER": "otlp"}, on("http/protobuf", httpC)},
		{"OTEL_SDK_DISABLED=true turns it off", TracingConfig{},
			map[string]string{ep: "http://c:4318", "OTEL_SDK_DISABLED": "TRUE"}, want{}},
		{"config enabled wins over OTEL_TRACES_EXPORTER=none", TracingConfig{Enabled: ptr(true)},
			map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_SDK_DISABLED": "true"},
			on("http/protobuf", "http://localhost:4318/v1/traces")},
		{"config enabled with grpc and no endpoint uses localhost:4317",
			TracingConfig{Enabled: ptr(true), Protocol: "grpc"}, nil, on("grpc", "http://localhost:4317")},
		{"config disabled wins over the endpoint variable", TracingConfig{Enabled: ptr(false)},
			map[string]string{ep: "http://c:4318"}, want{}},
		{"config endpoint alone turns it on", TracingConfig{Endpoint: "http://c:4318"}, nil, on("http/protobuf", httpC)},
		{"config endpoint with OTEL_TRACES_EXPORTER=none is off", TracingConfig{Endpoint: "http://c:4318"},
			map[string]string{"OTEL_TRACES_EXPORTER": "none"}, want{}},

		// Protocol and endpoint.
		{"OTEL_EXPORTER_OTLP_PROTOCOL=grpc", TracingConfig{},
			map[string]string{ep: "http://c:4317", proto: "grpc"}, on("grpc", "http://c:4317")},
		{"traces protocol wins over the generic one", TracingConfig{},
			map[string]string{ep: "http://c:4317", proto: "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
			on("grpc", "http://c:4317")},
		{"config protocol wins over the variables", TracingConfig{Protocol: "http/protobuf"},
			map[string]string{ep: "http://c:4318", proto: "grpc"}, on("http/protobuf", httpC)},
		{"traces endpoint is used as given", TracingConfig{},
			map[string]string{tracesEP: "http://c:4318/custom", ep: "http://other:4318"},
			on("http/protobuf", "http://c:4318/custom")},
		{"generic endpoint is a base URL", TracingConfig{},
			map[string]string{ep: "https://c:4318/otlp/"}, on("http/protobuf", "https://c:4318/otlp/v1/traces")},
		{"config endpoint wins over the variables", TracingConfig{Endpoint: "127.0.0.1:4317", Insecure: true, Protocol: "grpc"},
			map[string]string{ep: "http://other:4318", tracesEP: "http://other:4318/v1/traces"},
			on("grpc", "http://127.0.0.1:4317")},
		{"config host:port means TLS unless insecure", TracingConfig{Endpoint: "c:4318"}, nil,
			on("http/protobuf", "https://c:4318/v1/traces")},
		{"OTEL_EXPORTER_OTLP_INSECURE for a host:port variable", TracingConfig{},
			map[string]string{ep: "c:4317", proto: "grpc", "OTEL_EXPORTER_OTLP_INSECURE": "true"},
			on("grpc", "http://c:4317")},

		// Sampler.
		{"always_off", TracingConfig{}, map[string]string{ep: "http://c:4318", sampler: "always_off"},
			with(on("http/protobuf", httpC), func(w *want) { w.sampler = "always_off" })},
		{"traceidratio with its argument", TracingConfig{},
			map[string]string{ep: "http://c:4318", sampler: "traceidratio", arg: "0.25"},
			with(on("http/protobuf", httpC), func(w *want) { w.sampler = "traceidratio(0.25)" })},
		{"parentbased_traceidratio without an argument samples all", TracingConfig{},
			map[string]string{ep: "http://c:4318", sampler: "parentbased_traceidratio"},
			with(on("http/protobuf", httpC), func(w *want) { w.sampler = "parentbased_traceidratio(1)" })},
		{"parentbased_always_off", TracingConfig{},
			map[string]string{ep: "http://c:4318", sampler: "parentbased_always_off"},
			with(on("http/protobuf", httpC), func(w *want) { w.sampler = "parentbased_always_off" })},
		{"config ratio is parent-based by default", TracingConfig{SamplingRatio: ptr(0.1)},
			map[string]string{ep: "http://c:4318"},
			with(on("http/protobuf", httpC), func(w *want) { w.sampler = "parentbased_traceidratio(0.1)" })},
		{"config ratio wins over the sampler variable, which says not parent-based", TracingConfig{SamplingRatio: ptr(0.5)},
			map[string]string{ep: "http://c:4318", sampler: "always_on", arg: "0.9"},
			with(on("http/protobuf", httpC), func(w *want) { w.sampler = "traceidratio(0.5)" })},
		{"config parent_based false", TracingConfig{ParentBased: ptr(false)},
			map[string]string{ep: "http://c:4318", sampler: "parentbased_always_off"},
			with(on("http/protobuf", httpC), func(w *want) { w.sampler = "always_off" })},

		// Resource, timeout, headers.
		{"OTEL_SERVICE_NAME", TracingConfig{},
			map[string]string{ep: "http://c:4318", "OTEL_SERVICE_NAME": "gw", "OTEL_RESOURCE_ATTRIBUTES": "service.name=res"},
			with(on("http/protobuf", httpC), func(w *want) { w.service = "gw" })},
		{"service.name from OTEL_RESOURCE_ATTRIBUTES", TracingConfig{},
			map[string]string{ep: "http://c:4318", "OTEL_RESOURCE_ATTRIBUTES": "a=b, service.name=res"},
			with(on("http/protobuf", httpC), func(w *want) { w.service = "res" })},
		{"config service_name wins", TracingConfig{ServiceName: "cfg"},
			map[string]string{ep: "http://c:4318", "OTEL_SERVICE_NAME": "gw"},
			with(on("http/protobuf", httpC), func(w *want) { w.service = "cfg" })},
		{"timeout variable in milliseconds", TracingConfig{},
			map[string]string{ep: "http://c:4318", "OTEL_EXPORTER_OTLP_TIMEOUT": "2500"},
			with(on("http/protobuf", httpC), func(w *want) { w.timeout = 2500 * time.Millisecond })},
		{"config timeout wins", TracingConfig{Timeout: 3 * time.Second},
			map[string]string{ep: "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "2500"},
			with(on("http/protobuf", httpC), func(w *want) { w.timeout = 3 * time.Second })},
		{"headers from the variable and the config, config wins", TracingConfig{HeadersEnv: map[string]string{"b": "B_VAR"}},
			map[string]string{ep: "http://c:4318", "OTEL_EXPORTER_OTLP_HEADERS": "a=1, b=x%20y", "B_VAR": "secret"},
			with(on("http/protobuf", httpC), func(w *want) { w.headers = map[string]string{"a": "1", "b": "secret"} })},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s, err := resolveTracing(c.cfg, envMap(c.env))
			if err != nil {
				t.Fatalf("resolveTracing(%+v, %v): %v", c.cfg, c.env, err)
			}
			if s.enabled != c.want.on {
				t.Fatalf("resolveTracing(%+v, %v) enabled = %v, want %v (%s)", c.cfg, c.env, s.enabled, c.want.on, s.describe())
			}
			if !s.enabled {
				if d := s.describe(); !strings.HasPrefix(d, "off (") {
					t.Errorf("describe() = %q, want off (reason)", d)
				}
				return
			}
			got := want{on: true, protocol: s.protocol, endpoint: s.endpoint.String(), sampler: s.sampler.String(),
				service: s.serviceName, timeout: s.timeout, headers: s.headers}
			if len(got.headers) == 0 {
				got.headers = nil
			}
			if got.protocol != c.want.protocol || got.endpoint != c.want.endpoint || got.sampler != c.want.sampler ||
				got.service != c.want.service || got.timeout != c.want.timeout || !mapsEqual(got.headers, c.want.headers) {
				t.Errorf("resolveTracing(%+v, %v)\n got %+v\nwant %+v", c.cfg, c.env, got, c.want)
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestResolveTracingErrors(t *testing.T) {
	t.Parallel()
	const ep = "OTEL_EXPORTER_OTLP_ENDPOINT"
	cases := []struct {
		name string
		cfg  TracingConfig
		env  map[string]string
		want []string // each must appear in the error; none means no error
	}{
		{"http/json is not supported", TracingConfig{}, map[string]string{ep: "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
			[]string{`OTEL_EXPORTER_OTLP_PROTOCOL: must be grpc or http/protobuf, got "http/json"`}},
		{"unknown sampler", TracingConfig{}, map[string]string{ep: "http://c:4318", "OTEL_TRACES_SAMPLER": "jaeger_remote"},
			[]string{"OTEL_TRACES_SAMPLER:", "jaeger_remote"}},
		{"sampler ratio out of range", TracingConfig{}, map[string]string{ep: "http://c:4318", "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"},
			[]string{"OTEL_TRACES_SAMPLER_ARG:"}},
		{"every bad variable at once", TracingConfig{}, map[string]string{ep: "ftp://c", "OTEL_EXPORTER_OTLP_TIMEOUT": "soon",
			"OTEL_EXPORTER_OTLP_HEADERS": "novalue", "OTEL_RESOURCE_ATTRIBUTES": "=x"},
			[]string{"OTEL_EXPORTER_OTLP_ENDPOINT:", "OTEL_EXPORTER_OTLP_TIMEOUT:", "OTEL_EXPORTER_OTLP_HEADERS:", "OTEL_RESOURCE_ATTRIBUTES:"}},
		{"headers_env variable unset", TracingConfig{Enabled: ptr(true), HeadersEnv: map[string]string{"authorization": "NOT_SET"}}, nil,
			[]string{"telemetry.tracing.headers_env.authorization: environment variable NOT_SET is not set"}},
		{"a header entry is never echoed", TracingConfig{}, map[string]string{ep: "http://c:4318",
			"OTEL_EXPORTER_OTLP_HEADERS": "a=1,api-key:sk-supersecret123"},
			[]string{"OTEL_EXPORTER_OTLP_HEADERS: want name=value pairs separated by commas, entry 2 is not one"}},
		{"bad variables are not read when off", TracingConfig{}, map[string]string{"OTEL_TRACES_SAMPLER": "nope", "OTEL_EXPORTER_OTLP_PROTOCOL": "x"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := resolveTracing(c.cfg, envMap(c.env))
			if len(c.want) == 0 {
				if err != nil {
					t.Errorf("resolveTracing(%+v, %v) = %v, want nil", c.cfg, c.env, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("resolveTracing(%+v, %v) = nil, want an error mentioning %q", c.cfg, c.env, c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("resolveTracing(%+v, %v) = %v, want mention of %q", c.cfg, c.env, err, w)
				}
			}
			if strings.Contains(err.Error(), "supersecret") {
				t.Errorf("resolveTracing error %q repeats a header's value", err)
			}
			if _, err := NewTracing(t.Context(), c.cfg, envMap(c.env), "v"); err == nil {
				t.Errorf("NewTracing(%+v, %v) = nil error, want one", c.cfg, c.env)
			}
		})
	}
}

func TestTracingConfigValidate(t *testing.T) {
	t.Parallel()
	env := map[string]string{"TOKEN": "t", "EMPTY_VAR": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cases := []struct {
		name string
		cfg  TracingConfig
		want []string
	}{
		{"zero", TracingConfig{}, nil},
		{"complete", TracingConfig{Enabled: ptr(true), Endpoint: "127.0.0.1:4317", Protocol: "grpc", Insecure: true,
			HeadersEnv: map[string]string{"Authorization": "TOKEN"}, SamplingRatio: ptr(0.0), ParentBased: ptr(false),
			ServiceName: "gw", Timeout: time.Second}, nil},
		{"url endpoint", TracingConfig{Endpoint: "https://collector.example:4318/otlp", Protocol: "http/protobuf"}, nil},
		{"every problem", TracingConfig{Protocol: "x", Endpoint: "nope", SamplingRatio: ptr(1.5), Timeout: -time.Second,
			HeadersEnv: map[string]string{"bad name": "TOKEN", "x-empty": "", "x-unset": "UNSET_VAR", "x-blank": "EMPTY_VAR"}},
			[]string{
				`telemetry.tracing.protocol: must be grpc or http/protobuf, got "x"`,
				`telemetry.tracing.endpoint: must be host:port or an http(s) URL, got "nope"`,
				`telemetry.tracing.sampling_ratio: must be between 0 and 1, got 1.5`,
				`telemetry.tracing.timeout: must be >= 0, got -1s`,
				`telemetry.tracing.headers_env: "bad name" is not a valid header name`,
				`telemetry.tracing.headers_env.x-empty: must name an environment variable`,
				`telemetry.tracing.headers_env.x-unset: environment variable UNSET_VAR is not set`,
				`telemetry.tracing.headers_env.x-blank: environment variable EMPTY_VAR is empty`,
			}},
		{"insecure with https", TracingConfig{Endpoint: "https://c:4318", Insecure: true},
			[]string{"telemetry.tracing.endpoint: insecure is true"}},
		{"endpoint scheme", TracingConfig{Endpoint: "grpc://c:4317"}, []string{"telemetry.tracing.endpoint:"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := c.cfg.validate("telemetry.tracing.", lookup)
			if len(c.want) == 0 {
				if err != nil {
					t.Errorf("Validate(%+v) = %v, want nil", c.cfg, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate(%+v) = nil, want %d problems", c.cfg, len(c.want))
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate(%+v) =\n%v\nwant a line %q", c.cfg, err, w)
				}
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != len(c.want) {
				t.Errorf("Validate(%+v) lists %d problems, want %d:\n%v", c.cfg, n, len(c.want), err)
			}
		})
	}
}

// TestConfigValidateTracing checks that telemetry.Config validates its tracing section under
// its own path, reading the process environment for headers_env.
func TestConfigValidateTracing(t *testing.T) {
	t.Parallel()
	c := Config{Tracing: TracingConfig{Protocol: "x",
		HeadersEnv: map[string]string{"authorization": "LLMGATE_TEST_SURELY_UNSET_7F3A"}}}.WithDefaults()
	err := c.Validate("telemetry.")
	for _, w := range []string{`telemetry.tracing.protocol: must be grpc or http/protobuf, got "x"`,
		"telemetry.tracing.headers_env.authorization: environment variable LLMGATE_TEST_SURELY_UNSET_7F3A is not set"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Config.Validate = %v, want mention of %q", err, w)
		}
	}
}

func TestWithDefaultsCopiesHeaders(t *testing.T) {
	t.Parallel()
	orig := TracingConfig{HeadersEnv: map[string]string{"a": "A"}}
	c := orig.WithDefaults()
	c.HeadersEnv["a"] = "B"
	if orig.HeadersEnv["a"] != "A" {
		t.Errorf("WithDefaults shares HeadersEnv with its receiver: original now %v", orig.HeadersEnv)
	}
	if c.Enabled != nil || c.Protocol != "" || c.ServiceName != "" || c.SamplingRatio != nil || c.Timeout != 0 {
		t.Errorf("WithDefaults() = %+v, want unset fields left to the environment", c)
	}
}

func TestTracingOff(t *testing.T) {
	t.Parallel()
	tr, err := NewTracing(t.Context(), TracingConfig{}, envMap(nil), "v")
	if err != nil {
		t.Fatalf("NewTracing: %v", err)
	}
	if tr.Enabled() {
		t.Errorf("Enabled() = true with nothing configured, want false")
	}
	if d := tr.Describe(); d != "off (no OTLP endpoint configured)" {
		t.Errorf("Describe() = %q, want off and why", d)
	}
	_, span := tr.Provider().Tracer("t").Start(t.Context(), "x")
	if span.IsRecording() || span.SpanContext().IsValid() {
		t.Errorf("span with tracing off: recording %v, valid %v; want a no-op span", span.IsRecording(), span.SpanContext().IsValid())
	}
	span.End()

	// The incoming trace context still flows through, for traceparent upstream.
	parent := remoteParent(t)
	ctx, span := tr.Provider().Tracer("t").Start(parent, "x")
	carrier := propagation.MapCarrier{}
	tr.Propagator().Inject(ctx, carrier)
	if got, want := span.SpanContext().TraceID(), trace.SpanContextFromContext(parent).TraceID(); got != want {
		t.Errorf("trace ID with tracing off = %s, want the parent's %s", got, want)
	}
	if !strings.Contains(carrier["traceparent"], "4bf92f3577b34da6a3ce929d0e0e4736") {
		t.Errorf("injected traceparent = %q, want the incoming trace ID", carrier["traceparent"])
	}
	for range 2 {
		if err := tr.Shutdown(t.Context()); err != nil {
			t.Errorf("Shutdown with tracing off = %v, want nil", err)
		}
	}
}

// remoteParent returns a context holding a sampled remote span context, as extracted from a
// client's traceparent.
func remoteParent(t testing.TB) context.Context {
	return propagation.TraceContext{}.Extract(context.Background(),
		propagation.MapCarrier{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
}

// TestTracingOffAllocs holds the cost of a span with tracing off: nothing with an incoming
// trace context, one context value without. Variadic arguments (attributes, start options)
// cost a slice each even on a no-op span, so the hot path guards attributes with IsRecording
// and builds its options once. AllocsPerRun forbids t.Parallel.
func TestTracingOffAllocs(t *testing.T) {
	tr, err := NewTracing(t.Context(), TracingConfig{Enabled: ptr(false)}, envMap(nil), "v")
	if err != nil {
		t.Fatalf("NewTracing: %v", err)
	}
	tracer := tr.Provider().Tracer("t")
	for _, c := range []struct {
		name string
		ctx  context.Context
		max  float64
	}{{"remote parent", remoteParent(t), 0}, {"no parent", context.Background(), 1}} {
		got := testing.AllocsPerRun(100, func() {
			_, span := tracer.Start(c.ctx, "POST /v1/chat/completions")
			if span.IsRecording() {
				span.SetAttributes(attribute.Int("gen_ai.usage.output_tokens", 12))
			}
			span.AddEvent("first_token")
			span.End()
		})
		if got > c.max {
			t.Errorf("%s: start+end of a span with tracing off allocates %v times, want at most %v", c.name, got, c.max)
		}
	}
}

// BenchmarkSpanOff measures a span's start, one attribute (guarded by IsRecording), one event
// and its end with tracing off, with and without an incoming trace context, and with a span-kind option.
func BenchmarkSpanOff(b *testing.B) {
	tr, err := NewTracing(b.Context(), TracingConfig{}, envMap(nil), "v")
	if err != nil {
		b.Fatalf("NewTracing: %v", err)
	}
	tracer := tr.Provider().Tracer("bench")
	server := trace.WithSpanKind(trace.SpanKindServer)
	for _, c := range []struct {
		name string
		ctx  context.Context
		opts []trace.SpanStartOption
	}{
		{"remote_parent", remoteParent(b), nil},
		{"no_parent", context.Background(), nil},
		{"remote_parent_kind", remoteParent(b), []trace.SpanStartOption{server}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, span := tracer.Start(c.ctx, "POST /v1/chat/completions", c.opts...)
				if span.IsRecording() {
					span.SetAttributes(attribute.Int("gen_ai.usage.output_tokens", 12))
				}
				span.AddEvent("first_token")
				span.End()
			}
		})
	}
}
