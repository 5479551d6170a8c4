package otlptest

import (
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"testing"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// request builds an export request of one span named name.
func request(name string) *collectorpb.ExportTraceServiceRequest {
	str := func(k, v string) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
	}
	return &collectorpb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", "svc")}},
		ScopeSpans: []*tracepb.ScopeSpans{{
			Scope: &commonpb.InstrumentationScope{Name: "scope"},
			Spans: []*tracepb.Span{{
				TraceId: bytes.Repeat([]byte{0xab}, 16), SpanId: bytes.Repeat([]byte{0x01}, 8),
				ParentSpanId: bytes.Repeat([]byte{0x02}, 8), Name: name, Kind: tracepb.Span_SPAN_KIND_CLIENT,
				Attributes: []*commonpb.KeyValue{str("k", "v"), {Key: "n", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 3}}},
					{Key: "a", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{
						Values: []*commonpb.AnyValue{{Value: &commonpb.AnyValue_StringValue{StringValue: "stop"}}}}}}}},
				Events: []*tracepb.Span_Event{{Name: "first_token", Attributes: []*commonpb.KeyValue{str("e", "1")}}},
				Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "boom"},
			}},
		}},
	}}}
}

func TestReceiver(t *testing.T) {
	t.Parallel()
	r := Start(t)
	hc := &http.Client{Transport: &http.Transport{Proxy: nil}}
	t.Cleanup(hc.CloseIdleConnections)
	post := func(ct, enc string, body []byte) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, r.HTTPURL()+"/v1/traces", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", ct)
		if enc != "" {
			req.Header.Set("Content-Encoding", enc)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("POST /v1/traces: %v", err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	pb, err := proto.Marshal(request("http-protobuf"))
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(pb)
	_ = zw.Close()
	js, err := protojson.Marshal(request("http-json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, ct, enc string
		body          []byte
		want          int
	}{
		{"protobuf", "application/x-protobuf", "", pb, 200},
		{"gzip", "application/x-protobuf", "gzip", gz.Bytes(), 200},
		{"json", "application/json", "", js, 200},
		{"bad body", "application/x-protobuf", "", []byte("\xff\xff"), 400},
		{"bad type", "text/plain", "", pb, 415},
	} {
		if got := post(c.ct, c.enc, c.body); got != c.want {
			t.Errorf("POST /v1/traces %s = %d, want %d", c.name, got, c.want)
		}
	}
	resp, err := hc.Get(r.HTTPURL() + "/v1/traces")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/traces = %d, want 405", resp.StatusCode)
	}

	conn, err := grpc.NewClient(r.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := metadata.AppendToOutgoingContext(t.Context(), "x-token", "t1")
	if _, err := collectorpb.NewTraceServiceClient(conn).Export(ctx, request("grpc")); err != nil {
		t.Fatalf("gRPC Export: %v", err)
	}

	wctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	spans, err := r.WaitSpans(wctx, func(s []Span) bool { return len(s) == 4 })
	if err != nil {
		t.Fatalf("WaitSpans: %v", err)
	}
	want := map[string]string{"http-protobuf": "http", "http-json": "http", "grpc": "grpc"}
	for _, s := range spans {
		if p, ok := want[s.Name]; !ok || s.Protocol != p {
			t.Errorf("span %q arrived over %q, want %q", s.Name, s.Protocol, p)
		}
		checks := []struct {
			what      string
			got, want any
		}{
			{"trace ID", s.TraceID, "abababababababababababababababab"},
			{"span ID", s.SpanID, "0101010101010101"},
			{"parent", s.ParentSpanID, "0202020202020202"},
			{"kind", s.Kind, "client"},
			{"status", s.StatusCode + " " + s.StatusMsg, "error boom"},
			{"attr k", s.Attributes["k"], "v"},
			{"attr n", s.Attributes["n"], int64(3)},
			{"array len", len(s.Attributes["a"].([]any)), 1},
			{"event", len(s.Events) == 1 && s.Events[0].Name == "first_token" && s.Events[0].Attributes["e"] == "1", true},
			{"service.name", s.Resource["service.name"], "svc"},
			{"scope", s.Scope, "scope"},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("span %q: %s = %v, want %v", s.Name, c.what, c.got, c.want)
			}
		}
	}
	ex := r.Exports()
	if len(ex) != 4 || ex[3].Protocol != "grpc" || ex[3].Header.Get("X-Token") != "t1" {
		t.Errorf("Exports() = %+v, want 4 with the gRPC one carrying x-token", ex)
	}

	short, cancel2 := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel2()
	if _, err := r.WaitSpans(short, func(s []Span) bool { return len(s) > 4 }); err == nil {
		t.Errorf("WaitSpans for a fifth span = nil error, want the context's")
	}
}
