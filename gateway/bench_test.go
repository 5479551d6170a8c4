package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tidwall/gjson"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// benchChunks is how many content chunks the fake upstream streams per request. The stream
// also holds a role chunk, a finish chunk, a usage chunk when asked, and [DONE].
const benchChunks = 256

// benchContentChunk is a typical vLLM chat-completion chunk.
const benchContentChunk = `data: {"id":"chatcmpl-8f2a6c1e4b3d4c5e9a7b01d2","object":"chat.completion.chunk",` +
	`"created":1732330000,"model":"bench-model","choices":[{"index":0,"delta":{"content":" hello"},` +
	`"logprobs":null,"finish_reason":null}]}` + "\n\n"

const (
	benchRoleChunk = `data: {"id":"chatcmpl-8f2a6c1e4b3d4c5e9a7b01d2","object":"chat.completion.chunk",` +
		`"created":1732330000,"model":"bench-model","choices":[{"index":0,"delta":{"role":"assistant","content":""},` +
		`"logprobs":null,"finish_reason":null}]}` + "\n\n"
	benchFinishChunk = `data: {"id":"chatcmpl-8f2a6c1e4b3d4c5e9a7b01d2","object":"chat.completion.chunk",` +
		`"created":1732330000,"model":"bench-model","choices":[{"index":0,"delta":{},"logprobs":null,` +
		`"finish_reason":"length"}]}` + "\n\n"
	benchUsageChunk = `data: {"id":"chatcmpl-8f2a6c1e4b3d4c5e9a7b01d2","object":"chat.completion.chunk",` +
		`"created":1732330000,"model":"bench-model","choices":[],"usage":{"prompt_tokens":24,` +
		`"completion_tokens":256,"total_tokens":280}}` + "\n\n"
	benchDone = "data: [DONE]\n\n"
)

// benchStream returns the events of one streamed answer with n content chunks.
func benchStream(n int, withUsage bool) []string {
	events := []string{benchRoleChunk}
	for range n {
		events = append(events, benchContentChunk)
	}
	events = append(events, benchFinishChunk)
	if withUsage {
		events = append(events, benchUsageChunk)
	}
	return append(events, benchDone)
}

// benchAnswer is a non-streaming chat answer of about 1 KB.
var benchAnswer = `{"id":"chatcmpl-8f2a6c1e4b3d4c5e9a7b01d2","object":"chat.completion","created":1732330000,` +
	`"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"` +
	strings.Repeat(" hello world", 70) + `"},"logprobs":null,"finish_reason":"length"}],` +
	`"usage":{"prompt_tokens":24,"completion_tokens":140,"total_tokens":164}}`

func benchRequest(stream bool) []byte {
	return fmt.Appendf(nil, `{"model":"bench-model","messages":[`+
		`{"role":"system","content":"You are a concise assistant."},`+
		`{"role":"user","content":"Write a long greeting."}],"max_tokens":256,"stream":%t}`, stream)
}

// benchUpstream is a fake OpenAI backend: streams are written event by event with a flush
// after each, as an inference server does; the usage chunk comes only when the request asks.
func benchUpstream(b *testing.B) *httptest.Server {
	b.Helper()
	withUsage, without := benchStream(benchChunks, true), benchStream(benchChunks, false)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		if !gjson.GetBytes(body, "stream").Bool() {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, benchAnswer)
			return
		}
		events := without
		if gjson.GetBytes(body, "stream_options.include_usage").Bool() {
			events = withUsage
		}
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for _, ev := range events {
			if _, err := io.WriteString(w, ev); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}))
	b.Cleanup(srv.Close)
	return srv
}

// newBenchGateway builds a gateway serving bench-model from upstream. logJSON turns the JSON
// access log on (to io.Discard), as llmgate runs by default; otherwise logging is off.
func newBenchGateway(b testing.TB, upstream string, logJSON bool, tp ...trace.TracerProvider) *Gateway {
	b.Helper()
	cfg, err := ParseConfig(fmt.Appendf(nil, `
listen: "127.0.0.1:0"
admin_listen: "127.0.0.1:0"
backends:
  - name: fake
    url: %q
models:
  - name: bench-model
    backends: [fake]
`, upstream))
	if err != nil {
		b.Fatalf("ParseConfig: %v", err)
	}
	opts := Options{Registry: prometheus.NewRegistry()}
	if len(tp) > 0 {
		opts.TracerProvider = tp[0]
	}
	if logJSON {
		opts.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	g, err := New(cfg, opts)
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	b.Cleanup(g.client.CloseIdleConnections)
	return g
}

// benchServe serves h on loopback for the benchmark.
func benchServe(b *testing.B, h http.Handler) string {
	b.Helper()
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	return srv.URL
}

// benchReverseProxy is a plain httputil.ReverseProxy to upstream. It reads the request body
// first, as the gateway does: without that, ReverseProxy can cut a stream whose headers come
// back while the transport still reads the inbound body (golang/go#40747).
func benchReverseProxy(b *testing.B, upstream string) http.Handler {
	b.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		b.Fatalf("parse %q: %v", upstream, err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	rp := &httputil.ReverseProxy{Transport: tr, Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(u)
		pr.SetXForwarded()
	}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rp.ServeHTTP(w, r)
	})
}

// benchHop posts body to base's chat route once per iteration and reads the whole answer,
// which must be want bytes. When chunks > 0 it reports allocs/chunk: every allocation in the
// process (client, hop and fake upstream) over the content chunks relayed.
func benchHop(b *testing.B, base string, body []byte, want, chunks int) {
	b.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	target := base + "/v1/chat/completions"
	hop := func() {
		resp, err := client.Post(target, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatalf("POST %s: %v", target, err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || n != int64(want) {
			b.Fatalf("POST %s = %d, %d bytes, %v; want 200, %d bytes", target, resp.StatusCode, n, err, want)
		}
	}
	hop() // dial and warm up outside the measurement
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	b.ReportAllocs()
	for b.Loop() {
		hop()
	}
	runtime.ReadMemStats(&m1)
	if chunks > 0 {
		b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(chunks*b.N), "allocs/chunk")
	}
}

// benchLogName names a sub-benchmark by whether the JSON access log is on.
func benchLogName(logJSON bool) string {
	if logJSON {
		return "log=json"
	}
	return "log=off"
}

// streamedBytes is what a client receives: the stream without the usage chunk, which the
// gateway strips when it asked for usage itself and the others never see asked for.
func streamedBytes() int { return len(strings.Join(benchStream(benchChunks, false), "")) }

// BenchmarkRelayStream is a full streaming hop through the gateway's handler on loopback:
// client → gateway → fake upstream, 256 content chunks per request, each flushed on its own.
func BenchmarkRelayStream(b *testing.B) {
	for _, logJSON := range []bool{false, true} {
		b.Run(benchLogName(logJSON), func(b *testing.B) {
			g := newBenchGateway(b, benchUpstream(b).URL, logJSON)
			benchHop(b, benchServe(b, g.publicRoutes()), benchRequest(true), streamedBytes(), benchChunks)
		})
	}
}

// BenchmarkRelayStreamReverseProxy is BenchmarkRelayStream through a plain ReverseProxy.
func BenchmarkRelayStreamReverseProxy(b *testing.B) {
	up := benchUpstream(b)
	benchHop(b, benchServe(b, benchReverseProxy(b, up.URL)), benchRequest(true), streamedBytes(), benchChunks)
}

// BenchmarkRelayStreamDirect is the client reading the fake upstream with no hop: the floor
// the two benchmarks above add to.
func BenchmarkRelayStreamDirect(b *testing.B) {
	benchHop(b, benchUpstream(b).URL, benchRequest(true), streamedBytes(), benchChunks)
}

// BenchmarkRelayNonStream is a non-streaming hop through the gateway: a ~1 KB answer.
func BenchmarkRelayNonStream(b *testing.B) {
	for _, logJSON := range []bool{false, true} {
		b.Run(benchLogName(logJSON), func(b *testing.B) {
			g := newBenchGateway(b, benchUpstream(b).URL, logJSON)
			benchHop(b, benchServe(b, g.publicRoutes()), benchRequest(false), len(benchAnswer), 0)
		})
	}
}

// BenchmarkRelayNonStreamReverseProxy is BenchmarkRelayNonStream through a plain ReverseProxy.
func BenchmarkRelayNonStreamReverseProxy(b *testing.B) {
	up := benchUpstream(b)
	benchHop(b, benchServe(b, benchReverseProxy(b, up.URL)), benchRequest(false), len(benchAnswer), 0)
}

// BenchmarkRelayNonStreamDirect is the client reading the fake upstream with no hop.
func BenchmarkRelayNonStreamDirect(b *testing.B) {
	benchHop(b, benchUpstream(b).URL, benchRequest(false), len(benchAnswer), 0)
}

// benchRoundTripper answers every upstream request in memory with a stream, so that a
// benchmark measures the gateway's handler alone, without sockets.
type benchRoundTripper struct{ stream []byte }

func (rt *benchRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	_, _ = io.Copy(io.Discard, req.Body) // the gateway always sends a body
	_ = req.Body.Close()
	return &http.Response{StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"text/event-stream"}},
		Body:   io.NopCloser(bytes.NewReader(rt.stream)), Request: req}, nil
}

// benchWriter is a ResponseWriter and Flusher that counts and drops what it is given.
type benchWriter struct {
	h http.Header
	n int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
func (w *benchWriter) WriteHeader(int)             {}
func (w *benchWriter) Flush()                      {}

// BenchmarkRelayStreamHandler runs the gateway's handler on a stream answered in memory and
// reports allocs/chunk as the handler's marginal allocations per content chunk: allocations
// of a 256-chunk stream minus those of a 1-chunk stream, over 255. This is the per-chunk cost
// of the gateway alone, without net/http's or the upstream's. It runs with metrics only, and
// with metrics and tracing, every request sampled or one in ten, spans exported in batches
// to an exporter that drops them.
func BenchmarkRelayStreamHandler(b *testing.B) {
	for _, mode := range telemetryModes {
		b.Run(mode.name, func(b *testing.B) {
			hs := newHandlerStream(b, mode)
			perChunk := hs.allocsPerChunk(200)
			b.SetBytes(int64(hs.want))
			b.ReportAllocs()
			for b.Loop() {
				hs.serve()
			}
			b.ReportMetric(perChunk, "allocs/chunk")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(hs.chunk), "ns/chunk")
		})
	}
}

// telemetryModes are the telemetry settings the relay is measured under.
var telemetryModes = []telemetryMode{
	{"off", func(testing.TB) trace.TracerProvider { return nil }},
	{"metrics", func(testing.TB) trace.TracerProvider { return nil }},
	{"metrics+tracing", func(tb testing.TB) trace.TracerProvider { return benchTracer(tb, 1) }},
	{"metrics+tracing10%", func(tb testing.TB) trace.TracerProvider { return benchTracer(tb, 0.1) }},
}

// telemetryMode is one telemetry setting: off (no metrics, no tracing), metrics only, or
// metrics with tracing from provider.
type telemetryMode struct {
	name     string
	provider func(testing.TB) trace.TracerProvider
}

// benchTracer is a tracer provider sampling ratio of the requests and exporting in batches
// to an exporter that drops the spans.
func benchTracer(tb testing.TB, ratio float64) trace.TracerProvider {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()),
		sdktrace.WithSampler(sdktrace.TraceIDRatioBased(ratio)))
	tb.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp
}

// handlerStream runs the gateway's handler on a stream answered in memory.
type handlerStream struct {
	tb    testing.TB
	h     http.Handler
	rt    *benchRoundTripper
	body  []byte
	want  int // bytes the client must get: the stream without its usage chunk
	chunk int // content chunks in the stream
}

func newHandlerStream(tb testing.TB, mode telemetryMode) *handlerStream {
	g := newBenchGateway(tb, "http://127.0.0.1:1", false, mode.provider(tb))
	if mode.name == "off" {
		g.metrics = nil // records nothing
	}
	hs := &handlerStream{tb: tb, rt: &benchRoundTripper{}, body: benchRequest(true)}
	g.client.Transport = hs.rt
	hs.h = g.publicRoutes()
	hs.setStream(benchChunks)
	return hs
}

func (hs *handlerStream) setStream(n int) {
	hs.rt.stream = []byte(strings.Join(benchStream(n, true), ""))
	hs.want = len(strings.Join(benchStream(n, false), ""))
	hs.chunk = n
}

func (hs *handlerStream) serve() {
	req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(hs.body))
	w := &benchWriter{h: http.Header{}}
	hs.h.ServeHTTP(w, req)
	if w.n != hs.want {
		hs.tb.Fatalf("handler wrote %d bytes, want %d (the stream without its usage chunk)", w.n, hs.want)
	}
}

// allocsPerChunk is the handler's marginal allocations per content chunk: allocations of a
// benchChunks-chunk stream minus those of a 1-chunk stream, over the difference.
func (hs *handlerStream) allocsPerChunk(runs int) float64 {
	hs.setStream(1)
	base := testing.AllocsPerRun(runs, hs.serve)
	hs.setStream(benchChunks)
	full := testing.AllocsPerRun(runs, hs.serve)
	return (full - base) / (benchChunks - 1)
}

// benchToolCallChunk and benchReasoningChunk are the other chunk shapes inspectChunk reads.
const (
	benchToolCallChunk = `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1732330000,` +
		`"model":"bench-model","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,` +
		`"function":{"arguments":"{\"city\":"}}]},"logprobs":null,"finish_reason":null}]}`
	benchReasoningChunk = `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1732330000,` +
		`"model":"bench-model","choices":[{"index":0,"delta":{"reasoning_content":" so"},` +
		`"logprobs":null,"finish_reason":null}]}`
)

// sseData returns an event's data: the text between "data: " and the blank line.
func sseData(event string) []byte {
	return []byte(strings.TrimSuffix(strings.TrimPrefix(event, "data: "), "\n\n"))
}

var benchInspectCases = []struct {
	name string
	data []byte
	want chunkInfo
}{
	{"content", sseData(benchContentChunk), chunkInfo{content: true}},
	{"role", sseData(benchRoleChunk), chunkInfo{}},
	{"finish", sseData(benchFinishChunk), chunkInfo{}},
	{"usage-only", sseData(benchUsageChunk), chunkInfo{usageOnly: true}},
	{"tool-call", []byte(benchToolCallChunk), chunkInfo{content: true}},
	{"reasoning", []byte(benchReasoningChunk), chunkInfo{content: true}},
	{"error", []byte(`{"error":{"message":"overloaded","type":"server_error","code":503}}`), chunkInfo{err: true}},
}

// BenchmarkInspectChunk is the per-chunk inspection of a streamed chat chunk. Streamed text
// is kept for estimates, so st.streamed is reset each iteration to measure the steady state
// once its buffer has grown.
func BenchmarkInspectChunk(b *testing.B) {
	for _, c := range benchInspectCases {
		b.Run(c.name, func(b *testing.B) {
			st := &requestState{req: apiRequest{kind: routeChat}, streamed: make([]byte, 0, 64)}
			if got := inspectChunk(st, c.data); got != c.want {
				b.Fatalf("inspectChunk(%s) = %+v, want %+v", c.data, got, c.want)
			}
			var sink chunkInfo
			b.SetBytes(int64(len(c.data)))
			b.ReportAllocs()
			for b.Loop() {
				st.streamed = st.streamed[:0]
				sink = inspectChunk(st, c.data)
			}
			if sink != c.want {
				b.Fatalf("inspectChunk(%s) = %+v, want %+v", c.data, sink, c.want)
			}
		})
	}
}

// TestInspectChunkAllocs holds inspectChunk to its budget: no allocation per chunk once the
// streamed-text buffer has room.
func TestInspectChunkAllocs(t *testing.T) {
	for _, c := range benchInspectCases {
		st := &requestState{req: apiRequest{kind: routeChat}, streamed: make([]byte, 0, 64)}
		allocs := testing.AllocsPerRun(100, func() {
			st.streamed = st.streamed[:0]
			inspectChunk(st, c.data)
		})
		if allocs != 0 {
			t.Errorf("inspectChunk(%s) allocates %.1f times per call, want 0", c.name, allocs)
		}
	}
}

// benchChatBody is a realistic ~2 KB chat request: a system prompt, a short conversation and
// two tools.
var benchChatBody = []byte(`{"model":"bench-model","messages":[` +
	`{"role":"system","content":"You are a helpful travel assistant. Answer briefly, cite the tool results you used, and never invent prices or schedules. When the user asks for weather, call get_weather; for trains, call find_trains."},` +
	`{"role":"user","content":"I am going from Zurich to Milan next Tuesday morning. What will the weather be like in Milan, and which trains leave before nine?"},` +
	`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Milan\",\"date\":\"2026-11-24\"}"}}]},` +
	`{"role":"tool","tool_call_id":"call_1","content":"{\"city\":\"Milan\",\"date\":\"2026-11-24\",\"forecast\":\"light rain\",\"high_c\":11,\"low_c\":6,\"wind_kmh\":9}"},` +
	`{"role":"user","content":"Thanks. And the trains? I would prefer a direct one with a seat reservation, second class is fine."}],` +
	`"tools":[{"type":"function","function":{"name":"get_weather","description":"Get the weather forecast for a city on a date.",` +
	`"parameters":{"type":"object","properties":{"city":{"type":"string","description":"City name, e.g. Milan"},` +
	`"date":{"type":"string","description":"ISO date, e.g. 2026-11-24"}},"required":["city","date"]}}},` +
	`{"type":"function","function":{"name":"find_trains","description":"Find direct and connecting trains between two stations.",` +
	`"parameters":{"type":"object","properties":{"from":{"type":"string","description":"Departure station"},` +
	`"to":{"type":"string","description":"Arrival station"},"date":{"type":"string","description":"ISO date"},` +
	`"depart_before":{"type":"string","description":"Latest departure time, HH:MM"},` +
	`"direct_only":{"type":"boolean","description":"Only trains without a change"},` +
	`"class":{"type":"string","enum":["first","second"]}},"required":["from","to","date"]}}}],` +
	`"tool_choice":"auto","temperature":0.2,"top_p":0.95,"max_tokens":512,"user":"u-4821","stream":true}`)

// jsonParsePatch is what parseRequest and patchRequest do, written with encoding/json: decode
// the body to a map of raw values, read the fields the gateway acts on, change model and
// stream_options, and encode the map again. It is the alternative the gjson/sjson approach is
// measured against. (It also reorders the keys, which the gateway promises not to do.)
func jsonParsePatch(body []byte, upstreamModel string) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("decode body: %w", err)
	}
	var model string
	if err := json.Unmarshal(m["model"], &model); err != nil || model == "" {
		return nil, fmt.Errorf("decode model: %w", err)
	}
	var stream bool
	if raw, ok := m["stream"]; ok {
		if err := json.Unmarshal(raw, &stream); err != nil {
			return nil, fmt.Errorf("decode stream: %w", err)
		}
	}
	var so map[string]json.RawMessage
	if raw, ok := m["stream_options"]; ok {
		if err := json.Unmarshal(raw, &so); err != nil {
			return nil, fmt.Errorf("decode stream_options: %w", err)
		}
	}
	var maxTokens int64
	for _, key := range []string{"max_completion_tokens", "max_tokens"} {
		if raw, ok := m[key]; ok && json.Unmarshal(raw, &maxTokens) == nil {
			break
		}
	}
	_ = maxTokens // read, as parseRequest does
	changed := false
	if upstreamModel != model {
		m["model"], _ = json.Marshal(upstreamModel)
		changed = true
	}
	if stream && string(so["include_usage"]) != "true" {
		if so == nil {
			so = map[string]json.RawMessage{}
		}
		so["include_usage"] = json.RawMessage("true")
		m["stream_options"], _ = json.Marshal(so)
		changed = true
	}
	if !changed {
		return body, nil
	}
	out, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode body: %w", err)
	}
	return out, nil
}

// gjsonParsePatch is the gateway's own path: parseRequest then patchRequest.
func gjsonParsePatch(body []byte, upstreamModel string) ([]byte, error) {
	r, err := parseRequest(routeChat, body)
	if err != nil {
		return nil, err
	}
	out, _, err := patchRequest(r, upstreamModel)
	return out, err
}

// BenchmarkParsePatch compares reading and patching a ~2 KB chat body with tools the way the
// gateway does (gjson/sjson) against encoding/json. "stream" injects include_usage; "rename"
// also changes the model; "passthrough" is a non-streaming body the gateway need not change.
func BenchmarkParsePatch(b *testing.B) {
	passthrough := bytes.Replace(benchChatBody, []byte(`"stream":true`), []byte(`"stream":false`), 1)
	bodies := []struct {
		name     string
		body     []byte
		upstream string
	}{
		{"stream", benchChatBody, "bench-model"},
		{"rename", benchChatBody, "meta-llama/Llama-3.1-8B-Instruct"},
		{"passthrough", passthrough, "bench-model"},
	}
	impls := []struct {
		name string
		fn   func([]byte, string) ([]byte, error)
	}{
		{"gjson", gjsonParsePatch},
		{"encoding-json", jsonParsePatch},
	}
	for _, bd := range bodies {
		for _, im := range impls {
			b.Run(bd.name+"/"+im.name, func(b *testing.B) {
				out, err := im.fn(bd.body, bd.upstream)
				if err != nil {
					b.Fatalf("%s(%s): %v", im.name, bd.name, err)
				}
				wantUsage := gjson.GetBytes(bd.body, "stream").Bool()
				if got := gjson.GetBytes(out, "model").Str; got != bd.upstream ||
					gjson.GetBytes(out, "stream_options.include_usage").Bool() != wantUsage ||
					gjson.GetBytes(out, "tools.1.function.parameters.properties.class.enum.1").Str != "second" {
					b.Fatalf("%s(%s) = %s; want model %q, include_usage %t and the tools intact", im.name, bd.name, out, bd.upstream, wantUsage)
				}
				b.SetBytes(int64(len(bd.body)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := im.fn(bd.body, bd.upstream); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
