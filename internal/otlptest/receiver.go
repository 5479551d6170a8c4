package otlptest

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// maxBody caps an OTLP/HTTP request body, after decompression.
const maxBody = 64 << 20

// Span is one received span, flattened: IDs in lowercase hex, its resource's attributes
// copied in. Attribute values are string, bool, int64, float64, []byte, []any (arrays) or
// map[string]any (key-value lists).
type Span struct {
	TraceID      string
	SpanID       string
	ParentSpanID string // "" for a root span
	Name         string
	Kind         string // unspecified, internal, server, client, producer or consumer
	Attributes   map[string]any
	Events       []Event
	Links        []Link
	StatusCode   string // unset, ok or error
	StatusMsg    string
	Start, End   time.Time
	Scope        string         // instrumentation scope name
	Resource     map[string]any // the resource's attributes, service.name among them
	Protocol     string         // grpc or http: how the span arrived
}

// Event is a span event.
type Event struct {
	Name       string
	Time       time.Time
	Attributes map[string]any
}

// Link is a span link.
type Link struct {
	TraceID, SpanID string
	Attributes      map[string]any
}

// Export is one export request as received: its protocol and headers (gRPC metadata keys
// are canonicalised as HTTP header names).
type Export struct {
	Protocol string
	Header   http.Header
	Spans    int
}

// Receiver is a running OTLP trace receiver. It is safe for concurrent use.
type Receiver struct {
	grpcAddr string
	httpURL  string

	mu      sync.Mutex
	spans   []Span
	exports []Export
	changed chan struct{} // closed and replaced whenever spans are added
}

// Start starts a receiver on two free loopback ports, one for OTLP/gRPC and one for
// OTLP/HTTP. t's cleanup stops it and waits for its goroutines.
func Start(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{changed: make(chan struct{})}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("otlptest: listen for gRPC: %v", err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = gl.Close()
		t.Fatalf("otlptest: listen for HTTP: %v", err)
	}
	r.grpcAddr = gl.Addr().String()
	r.httpURL = "http://" + hl.Addr().String()

	gs := grpc.NewServer()
	collectorpb.RegisterTraceServiceServer(gs, traceService{r: r})
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/traces", r.serveHTTP)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	var wg sync.WaitGroup
	wg.Go(func() { _ = gs.Serve(gl) }) // returns once Stop is called
	wg.Go(func() { _ = hs.Serve(hl) }) // returns http.ErrServerClosed once Close is called
	t.Cleanup(func() {
		gs.Stop()
		_ = hs.Close()
		wg.Wait()
	})
	return r
}

// GRPCAddr returns the OTLP/gRPC listener's host:port.
func (r *Receiver) GRPCAddr() string { return r.grpcAddr }

// GRPCURL returns the OTLP/gRPC listener as a plaintext URL, http://host:port.
func (r *Receiver) GRPCURL() string { return "http://" + r.grpcAddr }

// HTTPURL returns the OTLP/HTTP listener's base URL, http://host:port; spans go to
// /v1/traces under it.
func (r *Receiver) HTTPURL() string { return r.httpURL }

// Spans returns a copy of every span received so far, in arrival order.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Exports returns every export request received so far, in arrival order.
func (r *Receiver) Exports() []Export {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Export(nil), r.exports...)
}

// WaitSpans waits until cond accepts the spans received so far, looking again each time more
// arrive, and returns them. When ctx ends first it returns the last spans seen and an error.
func (r *Receiver) WaitSpans(ctx context.Context, cond func([]Span) bool) ([]Span, error) {
	for {
		r.mu.Lock()
		spans, changed := append([]Span(nil), r.spans...), r.changed
		r.mu.Unlock()
		if cond(spans) {
			return spans, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return spans, fmt.Errorf("otlptest: wait for spans (have %d): %w", len(spans), context.Cause(ctx))
		}
	}
}

// add stores the spans of one export request.
func (r *Receiver) add(protocol string, hdr http.Header, req *collectorpb.ExportTraceServiceRequest) {
	spans := flatten(protocol, req)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spans = append(r.spans, spans...)
	r.exports = append(r.exports, Export{Protocol: protocol, Header: hdr, Spans: len(spans)})
	close(r.changed)
	r.changed = make(chan struct{})
}

// traceService is the OTLP/gRPC trace service.
type traceService struct {
	collectorpb.UnimplementedTraceServiceServer
	r *Receiver
}

func (s traceService) Export(ctx context.Context, req *collectorpb.ExportTraceServiceRequest) (*collectorpb.ExportTraceServiceResponse, error) {
	hdr := http.Header{}
	md, _ := metadata.FromIncomingContext(ctx)
	for k, vs := range md {
		for _, v := range vs {
			hdr.Add(k, v)
		}
	}
	s.r.add("grpc", hdr, req)
	return &collectorpb.ExportTraceServiceResponse{}, nil
}

// serveHTTP is OTLP/HTTP's POST /v1/traces, protobuf or JSON, optionally gzipped.
func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	var body io.Reader = req.Body
	switch enc := strings.ToLower(req.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, "bad gzip body: "+err.Error(), http.StatusBadRequest)
			return
		}
		defer zr.Close()
		body = zr
	default:
		http.Error(w, "unsupported Content-Encoding "+enc, http.StatusUnsupportedMediaType)
		return
	}
	b, err := io.ReadAll(io.LimitReader(body, maxBody+1))
	if err != nil || len(b) > maxBody {
		http.Error(w, fmt.Sprintf("read body: %v (limit %d bytes)", err, maxBody), http.StatusBadRequest)
		return
	}
	ct, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	unmarshal, marshal := proto.Unmarshal, proto.Marshal
	switch ct {
	case "application/x-protobuf":
	case "application/json":
		unmarshal, marshal = protojson.Unmarshal, protojson.Marshal
	default:
		http.Error(w, "unsupported Content-Type "+ct, http.StatusUnsupportedMediaType)
		return
	}
	var msg collectorpb.ExportTraceServiceRequest
	if err := unmarshal(b, &msg); err != nil {
		http.Error(w, "decode export request: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.add("http", req.Header.Clone(), &msg)
	out, err := marshal(&collectorpb.ExportTraceServiceResponse{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", ct)
	_, _ = w.Write(out) // the exporter going away is its own problem
}

// flatten turns an export request into Spans.
func flatten(protocol string, req *collectorpb.ExportTraceServiceRequest) []Span {
	var out []Span
	for _, rs := range req.GetResourceSpans() {
		res := attrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				s := Span{
					TraceID:      hex.EncodeToString(sp.GetTraceId()),
					SpanID:       hex.EncodeToString(sp.GetSpanId()),
					ParentSpanID: hex.EncodeToString(sp.GetParentSpanId()),
					Name:         sp.GetName(),
					Kind:         kindName(sp.GetKind()),
					Attributes:   attrs(sp.GetAttributes()),
					StatusCode:   statusName(sp.GetStatus().GetCode()),
					StatusMsg:    sp.GetStatus().GetMessage(),
					Start:        unixNano(sp.GetStartTimeUnixNano()),
					End:          unixNano(sp.GetEndTimeUnixNano()),
					Scope:        ss.GetScope().GetName(),
					Resource:     res,
					Protocol:     protocol,
				}
				for _, e := range sp.GetEvents() {
					s.Events = append(s.Events, Event{Name: e.GetName(), Time: unixNano(e.GetTimeUnixNano()),
						Attributes: attrs(e.GetAttributes())})
				}
				for _, l := range sp.GetLinks() {
					s.Links = append(s.Links, Link{TraceID: hex.EncodeToString(l.GetTraceId()),
						SpanID: hex.EncodeToString(l.GetSpanId()), Attributes: attrs(l.GetAttributes())})
				}
				out = append(out, s)
			}
		}
	}
	return out
}

func unixNano(n uint64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(n)).UTC()
}

func kindName(k tracepb.Span_SpanKind) string {
	name, ok := strings.CutPrefix(k.String(), "SPAN_KIND_")
	if !ok {
		return k.String()
	}
	return strings.ToLower(name)
}

func statusName(c tracepb.Status_StatusCode) string {
	name, ok := strings.CutPrefix(c.String(), "STATUS_CODE_")
	if !ok {
		return c.String()
	}
	return strings.ToLower(name)
}

func attrs(kvs []*commonpb.KeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = value(kv.GetValue())
	}
	return m
}

func value(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_BytesValue:
		return x.BytesValue
	case *commonpb.AnyValue_ArrayValue:
		out := make([]any, 0, len(x.ArrayValue.GetValues()))
		for _, e := range x.ArrayValue.GetValues() {
			out = append(out, value(e))
		}
		return out
	case *commonpb.AnyValue_KvlistValue:
		return attrs(x.KvlistValue.GetValues())
	default:
		return nil
	}
}
