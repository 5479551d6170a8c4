package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/llmgate/llmgate/telemetry"
)

// attempt is one request sent to one backend.
type attempt struct {
	b        *backend
	resp     *http.Response
	cancel   context.CancelCauseFunc // ends the upstream request
	timer    *time.Timer             // cancels the request when a body read waits too long
	timedOut atomic.Bool             // set by timer before it cancels
	body     *timedBody              // the response body, arming timer around each read
	span     telemetry.Attempt       // the attempt's client span, ended by close
	err      error                   // why the attempt failed, for its span
}

// close releases what the attempt holds. The backend's in-flight count is forward's to release.
func (a *attempt) close() {
	if a.timer != nil {
		a.timer.Stop()
	}
	status := 0
	if a.resp != nil {
		status = a.resp.StatusCode
		_ = a.resp.Body.Close()
	}
	a.span.End(status, a.err)
	a.cancel(nil)
}

// send makes one attempt at b. Its context derives from the client's, so a client that goes
// away cancels the upstream request, and generation stops.
func (g *Gateway) send(r *http.Request, st *requestState, b *backend, body []byte) (*attempt, error) {
	ctx, cancel := context.WithCancelCause(r.Context())
	// The trace tells whether the backend received the whole request, which decides whether a
	// request cut before any answer is estimated (it may have used the GPU) or costs nothing.
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteRequest: func(i httptrace.WroteRequestInfo) {
		if i.Err == nil {
			st.reached.Store(true)
		}
	}})
	ctx, span := st.tel.StartAttempt(ctx, b.name, b.host, b.port)
	a := &attempt{b: b, cancel: cancel, span: span}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url(st.kind.path()), bytes.NewReader(body))
	if err != nil {
		a.close()
		return nil, errInternal(err)
	}
	copyRequestHeaders(req.Header, r.Header)
	g.prop.Inject(ctx, propagation.HeaderCarrier(req.Header)) // this attempt's span, or the caller's context
	req.Header.Set("X-Request-Id", st.id)
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if b.authz != "" {
		req.Header.Set("Authorization", b.authz)
	}
	g.setForwarded(req.Header, r)
	st.upstreamStart = time.Now()
	resp, err := g.client.Do(req) //nolint:bodyclose // the attempt owns the body; close() closes it
	if err != nil {
		e := g.classify(r, a, err)
		a.err = e
		a.close()
		return nil, e
	}
	st.upstreamHeaders = time.Since(st.upstreamStart)
	a.resp = resp
	d := g.cfg.Upstream.ChunkTimeout.D()
	a.timer = time.AfterFunc(d, func() {
		a.timedOut.Store(true)
		cancel(errChunkTimeout)
	})
	a.timer.Stop() // armed only while a read waits
	a.body = &timedBody{r: resp.Body, t: a.timer, d: d}
	resp.Body = a.body
	return a, nil
}

// classify names why an upstream request or body read failed.
func (g *Gateway) classify(r *http.Request, a *attempt, err error) *apiError {
	var ne net.Error
	switch {
	case r.Context().Err() != nil:
		return errClientGone(r.Context(), err)
	case a.timedOut.Load():
		return errUpstreamTimeout(a.b.name, errChunkTimeout)
	case isDialError(err):
		return errUpstreamTransport(a.b.name, err)
	case errors.As(err, &ne) && ne.Timeout():
		return errUpstreamTimeout(a.b.name, err)
	default:
		return errUpstreamTransport(a.b.name, err)
	}
}

// isDialError reports whether err happened while connecting, before any byte of the request
// was sent: the one failure that is safe to retry on another backend.
func isDialError(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// timedBody bounds each read of an upstream body by d: the timer runs only while the gateway
// waits on the backend, so a client that reads slowly is not taken for a stalled backend.
// It is used by the relay goroutine alone.
type timedBody struct {
	r io.ReadCloser
	t *time.Timer
	d time.Duration // first_byte_timeout until a stream's first token, then chunk_timeout
}

func (b *timedBody) Read(p []byte) (int, error) {
	b.t.Reset(b.d)
	n, err := b.r.Read(p)
	b.t.Stop()
	return n, err
}

func (b *timedBody) Close() error { return b.r.Close() }
