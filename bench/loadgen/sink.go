package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// otlpSink accepts OTLP/HTTP trace exports on loopback and drops them, counting what it got,
// so that the traced llmgate pays the whole cost of exporting: encoding and sending.
type otlpSink struct {
	srv     *http.Server
	addr    string
	exports atomic.Int64
	bytes   atomic.Int64
	done    chan struct{}
}

func startSink() (*otlpSink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the OTLP sink: %w", err)
	}
	s := &otlpSink{addr: l.Addr().String(), done: make(chan struct{})}
	s.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		s.exports.Add(1)
		s.bytes.Add(n)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK) // an empty ExportTraceServiceResponse
	})}
	go func() { // ends when close shuts the server down
		defer close(s.done)
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Println("loadgen: OTLP sink:", err)
		}
	}()
	return s, nil
}

// env is the environment that points an OpenTelemetry SDK at the sink, sampling everything.
func (s *otlpSink) env() []string {
	return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + s.addr, "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_TRACES_SAMPLER=always_on"}
}

func (s *otlpSink) close() {
	_ = s.srv.Close()
	<-s.done
}
