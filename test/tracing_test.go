package test

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/otlptest"
)

// newTraceparent returns a sampled W3C traceparent with fresh random IDs, and those IDs.
func newTraceparent(t *testing.T) (header, traceID, parentID string) {
	t.Helper()
	b := make([]byte, 24)
	_, _ = rand.Read(b) // never fails
	traceID, parentID = hex.EncodeToString(b[:16]), hex.EncodeToString(b[16:])
	return "00-" + traceID + "-" + parentID + "-01", traceID, parentID
}

// parseTraceparent splits a version-00 traceparent into its trace and parent span IDs.
func parseTraceparent(h string) (traceID, parentID string, ok bool) {
	parts := strings.Split(strings.TrimSpace(h), "-")
	if len(parts) != 4 || parts[0] != "00" || len(parts[1]) != 32 || len(parts[2]) != 16 {
		return "", "", false
	}
	return parts[1], parts[2], true
}

// TestTracing sends a streamed chat completion with a client traceparent through an llmgate
// that exports spans over OTLP (gRPC, then HTTP) to an in-process receiver, configured only
// by the OTEL_* environment, and checks the one trace that arrives: the server span joined to
// the client's trace, the client span of the upstream attempt under it, the GenAI attributes,
// the first_token event, the traceparent llmsim received, and no prompt or completion text
// anywhere in the spans.
func TestTracing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		protocol string
		endpoint func(*otlptest.Receiver) string
		arrived  string // the receiver's name for the protocol
	}{
		{"grpc", (*otlptest.Receiver).GRPCURL, "grpc"},
		{"http/protobuf", (*otlptest.Receiver).HTTPURL, "http"},
	} {
		t.Run(tc.arrived, func(t *testing.T) {
			t.Parallel()
			rcv := otlptest.Start(t)
			gw := startGatewayConfig(t, gatewayConfig(suite.sim.url, ""), []string{
				"OTEL_EXPORTER_OTLP_ENDPOINT=" + tc.endpoint(rcv),
				"OTEL_EXPORTER_OTLP_PROTOCOL=" + tc.protocol,
				"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=", // unset whatever the test's environment says
				"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=",
				"OTEL_TRACES_EXPORTER=otlp",
				"OTEL_SDK_DISABLED=false",
				"OTEL_TRACES_SAMPLER=parentbased_always_on",
			})
			testTrace(t, rcv, gw, tc.arrived)
		})
	}
}

func testTrace(t *testing.T, rcv *otlptest.Receiver, gw *gwProc, arrived string) {
	hc := newHTTPClient(t)
	id := newRequestID(t)
	tp, traceID, parentID := newTraceparent(t)
	marker := "trace-marker-" + strings.ToLower(rand.Text()[:10])
	const maxTokens = 6
	body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"%s: say something"}],"max_tokens":%d,`+
		`"stream":true,"stream_options":{"include_usage":true}}`, simModel, marker, maxTokens)
	resp := send(t, hc, http.MethodPost, gw.url+"/v1/chat/completions", body,
		headers("X-Request-Id", id, "Traceparent", tp))
	events, err := readAllEvents(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("POST %s = %d, stream error %v, want 200 and a complete stream", body, resp.StatusCode, err)
	}
	completion, usages := streamText(t, events)
	if len(usages) != 1 || completion == "" {
		t.Fatalf("stream: completion %q, usage chunks %+v; want text and one usage chunk", completion, usages)
	}
	var finish []any
	var respModel string
	for _, ev := range events {
		var c struct {
			Model   string `json:"model"`
			Choices []struct {
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
		}
		if ev == "[DONE]" || json.Unmarshal([]byte(ev), &c) != nil {
			continue
		}
		respModel = cmp.Or(respModel, c.Model)
		for _, ch := range c.Choices {
			if ch.FinishReason != nil {
				finish = append(finish, *ch.FinishReason)
			}
		}
	}
	upstream := simRequest(t, suite.sim, id)

	// Spans are flushed on shutdown; SIGTERM now rather than wait for the batch delay.
	if err := gw.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("send SIGTERM: %v", err)
	}
	if code, ok := gw.waitExit(30 * time.Second); !ok || code != 0 {
		t.Errorf("llmgate after SIGTERM: exited %v with code %d, want exit 0", ok, code)
	}
	ctx, cancel := context.WithTimeout(t.Context(), settleTimeout) // llmgate flushed its spans before exiting
	defer cancel()
	inTrace := func(spans []otlptest.Span) []otlptest.Span {
		return slices.DeleteFunc(slices.Clone(spans), func(s otlptest.Span) bool { return s.TraceID != traceID })
	}
	all, err := rcv.WaitSpans(ctx, func(spans []otlptest.Span) bool {
		var server, client bool
		for _, s := range inTrace(spans) {
			server = server || s.Kind == "server"
			client = client || s.Kind == "client"
		}
		return server && client
	})
	spans := inTrace(all)
	if err != nil {
		t.Fatalf("receiver: no server and client span of trace %s: %v\nall spans: %+v", traceID, err, all)
	}

	var servers, clients []otlptest.Span
	for _, s := range spans {
		switch s.Kind {
		case "server":
			servers = append(servers, s)
		case "client":
			clients = append(clients, s)
		}
	}
	if len(servers) != 1 || len(clients) != 1 {
		t.Fatalf("trace %s has %d server and %d client spans, want 1 and 1: %+v", traceID, len(servers), len(clients), spans)
	}
	srv, cl := servers[0], clients[0]
	u, err := url.Parse(suite.sim.url)
	if err != nil {
		t.Fatal(err)
	}
	simPort, _ := strconv.ParseInt(u.Port(), 10, 64)
	usage := usages[0]

	checks := []struct {
		what      string
		got, want any
	}{
		{"server span name", srv.Name, "POST /v1/chat/completions"},
		{"server parent span ID (the client's traceparent)", srv.ParentSpanID, parentID},
		{"server service.name", srv.Resource["service.name"], "llmgate"},
		{"server protocol", srv.Protocol, arrived},
		{"server gen_ai.operation.name", srv.Attributes["gen_ai.operation.name"], "chat"},
		{"server gen_ai.request.model", srv.Attributes["gen_ai.request.model"], simModel},
		{"server gen_ai.response.model", srv.Attributes["gen_ai.response.model"], respModel},
		{"server gen_ai.request.max_tokens", srv.Attributes["gen_ai.request.max_tokens"], int64(maxTokens)},
		{"server gen_ai.usage.input_tokens", srv.Attributes["gen_ai.usage.input_tokens"], int64(usage.PromptTokens)},
		{"server gen_ai.usage.output_tokens", srv.Attributes["gen_ai.usage.output_tokens"], int64(usage.CompletionTokens)},
		{"server gen_ai.response.finish_reasons", fmt.Sprint(srv.Attributes["gen_ai.response.finish_reasons"]), fmt.Sprint(finish)},
		{"server http.response.status_code", srv.Attributes["http.response.status_code"], int64(200)},
		{"server llmgate.outcome", srv.Attributes["llmgate.outcome"], "ok"},
		{"server status is not error", srv.StatusCode == "unset" || srv.StatusCode == "ok", true},
		{"server has a first_token event", slices.ContainsFunc(srv.Events, func(e otlptest.Event) bool { return e.Name == "first_token" }), true},
		{"client span name", cl.Name, "chat " + simModel},
		{"client parent span ID (the server span)", cl.ParentSpanID, srv.SpanID},
		{"client gen_ai.operation.name", cl.Attributes["gen_ai.operation.name"], "chat"},
		{"client gen_ai.request.model", cl.Attributes["gen_ai.request.model"], simModel},
		{"client server.address", cl.Attributes["server.address"], u.Hostname()},
		{"client server.port", cl.Attributes["server.port"], simPort},
		{"client llmgate.backend", cl.Attributes["llmgate.backend"], "sim"},
		{"client http.response.status_code", cl.Attributes["http.response.status_code"], int64(200)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v (%T), want %v (%T)", c.what, c.got, c.got, c.want, c.want)
		}
	}
	if len(finish) == 0 {
		t.Errorf("stream carried no finish_reason to compare with the span's")
	}

	// llmsim got a traceparent in the same trace whose parent is the client span.
	gotTrace, gotParent, ok := parseTraceparent(upstream.Headers.Get("Traceparent"))
	if !ok || gotTrace != traceID || gotParent != cl.SpanID {
		t.Errorf("llmsim received Traceparent %q, want trace %s and parent %s (the client span)",
			upstream.Headers.Get("Traceparent"), traceID, cl.SpanID)
	}

	// Neither the prompt nor the completion appears in any span.
	for _, s := range all {
		texts := []string{s.Name, fmt.Sprint(s.Attributes), s.StatusMsg}
		for _, e := range s.Events {
			texts = append(texts, e.Name, fmt.Sprint(e.Attributes))
		}
		for _, text := range texts {
			if strings.Contains(text, marker) || strings.Contains(text, strings.TrimSpace(completion)) {
				t.Errorf("span %q (%s) carries the prompt or the completion: %.300s", s.Name, s.Kind, text)
			}
		}
	}
}

// TestTracePropagationExportOff checks that with export off (explicitly, whatever the test
// process's environment says) a client's trace context still reaches the backend: llmsim
// receives a traceparent of the client's trace.
func TestTracePropagationExportOff(t *testing.T) {
	t.Parallel()
	gw := startGatewayConfig(t, gatewayConfig(suite.sim.url, ""), []string{"OTEL_TRACES_EXPORTER=none"})
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			t.Parallel()
			id := newRequestID(t)
			tp, traceID, _ := newTraceparent(t)
			body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}],"max_tokens":2,"stream":%v}`, simModel, stream)
			resp, b := do(t, newHTTPClient(t), http.MethodPost, gw.url+"/v1/chat/completions", body,
				headers("X-Request-Id", id, "Traceparent", tp))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("POST %s = %d, want 200:\n%s", body, resp.StatusCode, b)
			}
			got := simRequest(t, suite.sim, id).Headers.Get("Traceparent")
			if gotTrace, _, ok := parseTraceparent(got); !ok || gotTrace != traceID {
				t.Errorf("llmsim received Traceparent %q with export off, want one in trace %s (client sent %s)", got, traceID, tp)
			}
		})
	}
}
