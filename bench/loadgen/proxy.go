package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"
)

// serveProxy is the -serve-proxy mode: a plain httputil.ReverseProxy to upstream, the baseline
// for what any proxy hop costs. It prints "loadgen proxy: listening on http://ADDR" to stderr
// and serves until ctx is done.
func serveProxy(ctx context.Context, upstream, listen string, stderr io.Writer) error {
	rp, err := newReverseProxy(upstream)
	if err != nil {
		return err
	}
	h := bufferBody(rp)
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: log.New(stderr, "loadgen proxy: ", 0)}
	fmt.Fprintf(stderr, "loadgen proxy: listening on http://%s\n", ln.Addr())
	served := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() { served <- srv.Serve(ln) })
	defer wg.Wait()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		_ = srv.Close()
	}
	return nil
}

// maxProxyBody bounds a request body the proxy buffers, as llmgate's max_body_bytes does.
const maxProxyBody = 32 << 20

// bufferBody reads the whole request body before next sees the request, as llmgate does.
// Without it, ReverseProxy cuts some streams under load (golang/go#40747): the backend's
// headers come back while the transport still reads the inbound body to check its length,
// writing them to the client closes that body, and the transport drops the connection to the
// backend, so the client gets a 200 and a stream cut before its first event.
func bufferBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxProxyBody))
		if err != nil {
			http.Error(w, "read request body: "+err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// newReverseProxy returns a ReverseProxy to upstream whose transport keeps as many idle
// connections as llmgate's does (1024 per backend), so that neither dials per request and the
// comparison is about the relay. Event streams are flushed per write, as ReverseProxy does for
// text/event-stream.
func newReverseProxy(upstream string) (*httputil.ReverseProxy, error) {
	u, err := url.Parse(upstream)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("parse -upstream %q: want a base URL such as http://127.0.0.1:8000", upstream)
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
		},
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}, nil
}
