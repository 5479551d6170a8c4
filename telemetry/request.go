package telemetry

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// SemconvVersion is the OpenTelemetry semantic-conventions release whose GenAI, HTTP and
// server attributes the spans follow. The GenAI conventions are still in development.
const SemconvVersion = "1.41.0"

// Attribute keys of the gateway's own, beside the semantic conventions'.
const (
	attrOutcome   = attribute.Key("llmgate.outcome")
	attrBackend   = attribute.Key("llmgate.backend")
	attrRequestID = attribute.Key("llmgate.request_id")
	attrTenant    = attribute.Key("llmgate.tenant")
	attrCost      = attribute.Key("llmgate.cost_usd")
)

// FirstTokenEvent is the span event recorded when a request's first content delta reaches
// the client. The GenAI conventions define no such event, so it has a plain name.
const FirstTokenEvent = "first_token"

// Tracer returns the tracer the gateway uses from tp, or a no-op tracer when tp is nil.
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return tp.Tracer("github.com/llmgate/llmgate/gateway", trace.WithSchemaURL(semconv.SchemaURL))
}

// Request is the telemetry of one request: its server span and the metric children it
// observes, resolved once so that the relay observes each chunk without a lookup or an
// allocation. It is used by the request's goroutine alone.
type Request struct {
	m        *Metrics
	tracer   trace.Tracer
	span     trace.Span
	exemplar prometheus.Labels // {trace_id} when the span is sampled; nil otherwise
	route    string
	op       string
	model    string // the model label
	backend  string
	tenant   string
	stream   StreamObserver
}

// Start begins the telemetry of a request arriving on route for the GenAI operation op
// (chat, text_completion, embeddings): a server span that is a child of any trace context
// in ctx. It returns ctx with the span, from which upstream requests must derive.
func (m *Metrics) Start(ctx context.Context, tracer trace.Tracer, route, op, requestID string) (context.Context, *Request) {
	r := &Request{m: m, tracer: tracer, route: route, op: op, model: "other", tenant: NoTenant}
	ctx, r.span = tracer.Start(ctx, "POST "+route, trace.WithSpanKind(trace.SpanKindServer))
	if r.span.IsRecording() {
		r.span.SetAttributes(semconv.GenAIOperationNameKey.String(op), semconv.HTTPRequestMethodPost,
			semconv.HTTPRoute(route), attrRequestID.String(requestID))
	}
	if sc := r.span.SpanContext(); sc.IsSampled() {
		r.exemplar = prometheus.Labels{"trace_id": sc.TraceID().String()}
	}
	return ctx, r
}

// SetModel names the model: label is the metric label (a served model, else "other"),
// requested the name the client sent (already clipped) and maxTokens its token limit, 0 if
// none.
func (r *Request) SetModel(label, requested string, maxTokens int64) {
	r.model = label
	if !r.span.IsRecording() {
		return
	}
	r.span.SetAttributes(semconv.GenAIRequestModelKey.String(requested))
	if maxTokens > 0 {
		r.span.SetAttributes(semconv.GenAIRequestMaxTokensKey.Int64(maxTokens))
	}
}

// Attempt is the client span of one upstream attempt.
type Attempt struct {
	span trace.Span
}

// StartAttempt begins the client span of an attempt at backend, reached at host:port, and
// returns ctx with it: the trace context sent upstream is this span's.
func (r *Request) StartAttempt(ctx context.Context, backend, host string, port int) (context.Context, Attempt) {
	r.backend = backend
	r.stream = StreamObserver{}
	ctx, span := r.tracer.Start(ctx, r.op+" "+r.model, trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		span.SetAttributes(semconv.GenAIOperationNameKey.String(r.op), semconv.GenAIRequestModelKey.String(r.model),
			semconv.ServerAddress(host), semconv.ServerPort(port), attrBackend.String(backend))
	}
	return ctx, Attempt{span: span}
}

// End ends the attempt's span with the backend's status, or with err when there was none.
func (a Attempt) End(status int, err error) {
	if a.span.IsRecording() {
		if status > 0 {
			a.span.SetAttributes(semconv.HTTPResponseStatusCode(status))
		}
		if err != nil || status >= 500 {
			a.span.SetStatus(codes.Error, errorText(status, err))
		}
	}
	a.span.End()
}

func errorText(status int, err error) string {
	if err != nil {
		return err.Error()
	}
	return "status " + strconv.Itoa(status)
}

// Stream returns the stream observers of the request's model and current backend, resolved
// on first use.
func (r *Request) Stream() StreamObserver {
	if r.stream.TTFT == nil && r.m != nil {
		r.stream = StreamObserver{
			TTFT:         r.m.ttft.WithLabelValues(r.model, r.backend),
			UpstreamTTFT: r.m.upstreamTTFT.WithLabelValues(r.model, r.backend),
			InterToken:   r.m.interToken.WithLabelValues(r.model),
			Generation:   r.m.generation.WithLabelValues(r.model),
		}
	}
	return r.stream
}

// FirstToken records the first content delta: the time to it from the request's arrival
// (with the trace ID as exemplar), from sending upstream, and the first_token span event.
func (r *Request) FirstToken(obs StreamObserver, ttft, upstreamTTFT time.Duration) {
	observeExemplar(obs.TTFT, ttft, r.exemplar)
	Observe(obs.UpstreamTTFT, upstreamTTFT)
	r.span.AddEvent(FirstTokenEvent)
}

// Retry counts a request sent again to another backend because the last attempt failed
// for reason.
func (r *Request) Retry(reason string) {
	if r.m != nil {
		r.m.retries.WithLabelValues(r.model, reason).Inc()
	}
}

// Tokens is a request's token counts and where they came from; Source is empty when there
// are none.
type Tokens struct {
	Input, Output int
	Source        string
}

// Outcome is how a request ended, recorded once by Finish.
type Outcome struct {
	Code          int    // the HTTP status the client got (499 when it went away)
	Outcome       string // the outcome label
	Duration      time.Duration
	Tokens        Tokens
	CostUSD       float64
	ResponseModel string   // the model that served the request, "" if none did
	FinishReasons []string // the choices' finish reasons, when the answer gave them
	Err           error    // why it failed; nil for ok
}

// Finish records the request once: its count, duration, tokens and cost, and the server
// span's attributes and status, then ends the span.
func (r *Request) Finish(o Outcome) {
	if r.m != nil {
		r.record(o)
	}
	if r.span.IsRecording() {
		r.finishSpan(o)
	}
	r.span.End()
}

// record adds the request to the metrics.
func (r *Request) record(o Outcome) {
	m := r.m
	m.requests.WithLabelValues(r.route, r.model, strconv.Itoa(o.Code), o.Outcome, r.tenant).Inc()
	observeExemplar(m.duration.WithLabelValues(r.route, r.model), o.Duration, r.exemplar)
	if o.Tokens.Input > 0 {
		m.tokens.WithLabelValues(r.model, "input", o.Tokens.Source, r.tenant).Add(float64(o.Tokens.Input))
	}
	if o.Tokens.Output > 0 {
		m.tokens.WithLabelValues(r.model, "output", o.Tokens.Source, r.tenant).Add(float64(o.Tokens.Output))
	}
	if o.CostUSD > 0 {
		m.cost.WithLabelValues(r.model, r.tenant).Add(o.CostUSD)
	}
}

func (r *Request) finishSpan(o Outcome) {
	s := r.span
	s.SetAttributes(semconv.HTTPResponseStatusCode(o.Code), attrOutcome.String(o.Outcome), attrTenant.String(r.tenant))
	if r.backend != "" {
		s.SetAttributes(attrBackend.String(r.backend))
	}
	if o.ResponseModel != "" {
		s.SetAttributes(semconv.GenAIResponseModelKey.String(o.ResponseModel))
	}
	if o.Tokens.Source != "" {
		s.SetAttributes(semconv.GenAIUsageInputTokensKey.Int(o.Tokens.Input),
			semconv.GenAIUsageOutputTokensKey.Int(o.Tokens.Output))
	}
	if len(o.FinishReasons) > 0 {
		s.SetAttributes(semconv.GenAIResponseFinishReasonsKey.StringSlice(o.FinishReasons))
	}
	if o.CostUSD > 0 {
		s.SetAttributes(attrCost.Float64(o.CostUSD))
	}
	if o.Outcome != "ok" {
		s.SetStatus(codes.Error, errorText(o.Code, o.Err))
	}
}

// Recording reports whether the request's span records: only then are span-only details,
// such as finish reasons, worth collecting.
func (r *Request) Recording() bool { return r.span.IsRecording() }

// TraceID returns the request's trace ID in hex, or "" when it has no valid trace.
func (r *Request) TraceID() string {
	if sc := r.span.SpanContext(); sc.HasTraceID() {
		return sc.TraceID().String()
	}
	return ""
}
