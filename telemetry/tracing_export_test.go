package telemetry

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/llmgate/llmgate/internal/otlptest"
)

// TestExport exports a server span and its client child over each protocol, configured from
// the config or from the environment alone, to an in-process receiver, and checks what
// arrived: names, kinds, links, attributes, the event, the resource and the headers.
func TestExport(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		protocol string // what the receiver should see: grpc or http
		setup    func(r *otlptest.Receiver) (TracingConfig, map[string]string)
	}{
		{"grpc from config", "grpc", func(r *otlptest.Receiver) (TracingConfig, map[string]string) {
			return TracingConfig{Enabled: ptr(true), Protocol: "grpc", Endpoint: r.GRPCAddr(), Insecure: true,
					ServiceName: "llmgate-test", HeadersEnv: map[string]string{"x-test-token": "TEST_TOKEN"}},
				map[string]string{"TEST_TOKEN": "s3cret", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}
		}},
		{"http from config", "http", func(r *otlptest.Receiver) (TracingConfig, map[string]string) {
			return TracingConfig{Enabled: ptr(true), Protocol: "http/protobuf", Endpoint: r.HTTPURL(),
					ServiceName: "llmgate-test", HeadersEnv: map[string]string{"x-test-token": "TEST_TOKEN"}},
				map[string]string{"TEST_TOKEN": "s3cret", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}
		}},
		{"grpc from the environment", "grpc", func(r *otlptest.Receiver) (TracingConfig, map[string]string) {
			return TracingConfig{}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": r.GRPCURL(),
				"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_SERVICE_NAME": "llmgate-test",
				"OTEL_EXPORTER_OTLP_HEADERS": "x-test-token=s3cret"}
		}},
		{"http from the environment", "http", func(r *otlptest.Receiver) (TracingConfig, map[string]string) {
			return TracingConfig{}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": r.HTTPURL(),
				"OTEL_RESOURCE_ATTRIBUTES":          "service.name=llmgate-test,deployment.environment.name=e2e",
				"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-test-token=s3cret"}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rcv := otlptest.Start(t)
			cfg, env := c.setup(rcv)
			tr, err := NewTracing(t.Context(), cfg, envMap(env), "v9.9.9")
			if err != nil {
				t.Fatalf("NewTracing(%+v, %v): %v", cfg, env, err)
			}
			if !tr.Enabled() {
				t.Fatalf("Enabled() = false, want true: %s", tr.Describe())
			}
			if d := tr.Describe(); strings.Contains(d, "s3cret") || !strings.Contains(d, "x-test-token") {
				t.Errorf("Describe() = %q, want the header's name and never its value", d)
			}

			tracer := tr.Provider().Tracer("llmgate")
			ctx, server := tracer.Start(remoteParent(t), "POST /v1/chat/completions", trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(attribute.String("gen_ai.operation.name", "chat"), attribute.Int("gen_ai.request.max_tokens", 7)))
			_, client := tracer.Start(ctx, "chat sim-model", trace.WithSpanKind(trace.SpanKindClient))
			client.SetStatus(codes.Error, "upstream 500")
			client.End()
			server.AddEvent("first_token")
			server.SetAttributes(attribute.StringSlice("gen_ai.response.finish_reasons", []string{"stop"}))
			server.End()

			sctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if err := tr.Shutdown(sctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			if err := tr.Shutdown(sctx); err != nil {
				t.Errorf("second Shutdown = %v, want nil", err)
			}
			spans := rcv.Spans() // Shutdown flushed: they are all there now
			if len(spans) != 2 {
				t.Fatalf("receiver holds %d spans after Shutdown, want 2: %+v", len(spans), spans)
			}
			byName := map[string]otlptest.Span{}
			for _, s := range spans {
				byName[s.Name] = s
			}
			srv, cl := byName["POST /v1/chat/completions"], byName["chat sim-model"]
			const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
			checks := []struct {
				what      string
				got, want any
			}{
				{"server trace ID", srv.TraceID, traceID},
				{"server parent", srv.ParentSpanID, parentID},
				{"server kind", srv.Kind, "server"},
				{"server status", srv.StatusCode, "unset"},
				{"client trace ID", cl.TraceID, traceID},
				{"client parent", cl.ParentSpanID, srv.SpanID},
				{"client kind", cl.Kind, "client"},
				{"client status", cl.StatusCode + ": " + cl.StatusMsg, "error: upstream 500"},
				{"gen_ai.operation.name", srv.Attributes["gen_ai.operation.name"], "chat"},
				{"gen_ai.request.max_tokens", srv.Attributes["gen_ai.request.max_tokens"], int64(7)},
				{"finish reasons", stringsOf(srv.Attributes["gen_ai.response.finish_reasons"]), "stop"},
				{"event count", len(srv.Events), 1},
				{"service.name", srv.Resource["service.name"], "llmgate-test"},
				{"service.version", srv.Resource["service.version"], "v9.9.9"},
				{"protocol", srv.Protocol, c.protocol},
			}
			for _, ch := range checks {
				if ch.got != ch.want {
					t.Errorf("%s = %v (%T), want %v (%T)", ch.what, ch.got, ch.got, ch.want, ch.want)
				}
			}
			if len(srv.Events) == 1 && srv.Events[0].Name != "first_token" {
				t.Errorf("server event = %q, want first_token", srv.Events[0].Name)
			}
			exports := rcv.Exports()
			if len(exports) == 0 || exports[0].Header.Get("X-Test-Token") != "s3cret" {
				t.Errorf("exports = %+v, want the x-test-token header on each", exports)
			}
		})
	}
}

// stringsOf joins an OTLP string array received as []any.
func stringsOf(v any) string {
	a, ok := v.([]any)
	if !ok {
		return "not an array"
	}
	var parts []string
	for _, e := range a {
		s, _ := e.(string)
		parts = append(parts, s)
	}
	return strings.Join(parts, ",")
}

// TestShutdownUnreachable checks that Shutdown gives up when its context ends, with an
// error, even when the collector cannot be reached.
func TestShutdownUnreachable(t *testing.T) {
	t.Parallel()
	tr, err := NewTracing(t.Context(), TracingConfig{Enabled: ptr(true), Endpoint: "http://127.0.0.1:1", Timeout: 200 * time.Millisecond},
		envMap(nil), "v")
	if err != nil {
		t.Fatalf("NewTracing: %v", err)
	}
	_, span := tr.Provider().Tracer("t").Start(t.Context(), "x")
	span.End()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_ = tr.Shutdown(ctx) // an export error or the deadline: either way it must return
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Shutdown took %s against an unreachable collector, want it bounded by its context", took)
	}
}
