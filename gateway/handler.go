package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"time"
)

// requestState is everything the gateway learns about one request, filled in step by step and
// recorded once by account.
type requestState struct {
	start      time.Time
	id         string
	kind       routeKind
	modelLabel string // the metric label: a served model's name, else "other"
	model      *model
	req        apiRequest
	backend    string
	status     int
	outcome    string
	err        error

	upstreamStart   time.Time
	upstreamHeaders time.Duration // until the backend's response headers
	upstreamTotal   time.Duration // until the backend's last byte
	firstToken      time.Time     // the first content delta reached the client
	lastToken       time.Time
	upstreamTTFT    time.Duration // from sending upstream to reading the first content delta

	usage    usage
	streamed []byte  // streamed text, for estimates when the backend reports no usage
	textBuf  *[]byte // the pooled buffer behind streamed, returned by release
}

// fail records err as the request's outcome.
func (st *requestState) fail(e *apiError) {
	st.status, st.outcome, st.err = e.status, e.outcome, e
}

// handle returns the handler of one OpenAI route. Its body is the request path of DESIGN §1.
func (g *Gateway) handle(kind routeKind) http.HandlerFunc {
	active := g.metrics.Active(kind.path())
	return func(w http.ResponseWriter, r *http.Request) {
		st := &requestState{start: time.Now(), id: requestID(r.Context()), kind: kind,
			modelLabel: otherModel, status: http.StatusOK, outcome: outcomeOK}
		active.Inc()
		g.handlers.Add(1)
		defer g.handlers.Done()
		defer active.Dec()
		defer g.release(st)
		defer g.finish(r.Context(), st) // also when a failed stream panics to abort
		if err := g.serve(w, r, st); err != nil {
			e := asAPIError(err)
			st.fail(e)
			writeError(w, e)
		}
	}
}

// finish accounts for the request once it is over. When the handler panicked it marks the
// request as an internal error first (unless the panic is the deliberate abort of a failed
// stream), then panics on with the stack of the original panic for recoverPanics to log.
func (g *Gateway) finish(ctx context.Context, st *requestState) {
	v := recover()
	if v == nil {
		g.account(ctx, st)
		return
	}
	if v != http.ErrAbortHandler { //nolint:errorlint // recover returns the value as panicked
		v = handlerPanic{value: v, stack: debug.Stack()}
		st.fail(errInternal(fmt.Errorf("panic: %v", v)))
	}
	g.account(ctx, st)
	panic(v)
}

// handlerPanic carries a recovered panic and the stack where it happened.
type handlerPanic struct {
	value any
	stack []byte
}

func (p handlerPanic) String() string { return fmt.Sprint(p.value) }

// serve runs the steps of the request path. An error it returns has not been written yet.
func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, st *requestState) error {
	if g.draining.Load() {
		return errDraining()
	}
	req, release, err := g.readRequest(w, r, st.kind) // step 2: parse once
	if err != nil {
		return err
	}
	defer release() // the body's share of body_memory_bytes, held until the request ends
	st.req = req
	m, err := g.lookupModel(req.model)
	if err != nil {
		return err
	}
	st.model, st.modelLabel = m, m.name
	if err := g.admit(r, st); err != nil { // step 3
		return err
	}
	if err := g.batch(r, st); err != nil { // step 4
		return err
	}
	return g.forward(w, r, st) // steps 5 and 6
}

func (g *Gateway) lookupModel(name string) (*model, error) {
	t := g.models.Load()
	if m := t.byName[name]; m != nil {
		return m, nil
	}
	if t.partial {
		return nil, errModelsUnknown(name)
	}
	return nil, errModelNotFound(name)
}

// admit is step 3: rate limits, the degradation decision and the concurrency queue. None is
// configured yet, so every request is admitted.
func (g *Gateway) admit(*http.Request, *requestState) error { return nil }

// batch is step 4: joining small compatible requests. Batching is not configured yet, so each
// request goes upstream on its own.
func (g *Gateway) batch(*http.Request, *requestState) error { return nil }

// forward is steps 5 and 6: pick a backend of the model's pool, send, and relay the answer.
// A connection that could not be made is retried on another backend; nothing else is, since
// the backend may already be generating.
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, st *requestState) error {
	body, injectedUsage, err := patchRequest(st.req, st.model.upstream)
	if err != nil {
		return errInternal(err)
	}
	var tried []*backend
	var lastErr error
	for {
		b, busy := pick(st.model.pool, tried, g.rr.Add(1))
		switch {
		case b == nil && lastErr != nil:
			return lastErr
		case b == nil && busy:
			return errBackendsBusy(st.model.name)
		case b == nil:
			return errNoBackend(st.model.name)
		}
		defer b.release() // pick counted the request on b; released when forward ends, even by a panic
		st.backend = b.name
		a, err := g.send(r, st, b, body)
		if err == nil {
			defer a.close()
			return g.relay(w, r, st, a, injectedUsage)
		}
		var e *apiError
		if !errors.As(err, &e) || !isDialError(e.cause) {
			return err
		}
		b.setUp(false, g.log, err)
		tried, lastErr = append(tried, b), err
	}
}

// relay is step 6: it hands the response to the stream or the buffered relay.
func (g *Gateway) relay(w http.ResponseWriter, r *http.Request, st *requestState, a *attempt, injectedUsage bool) error {
	if a.resp.StatusCode < 300 && isEventStream(a.resp, st.req.stream) {
		g.relayStream(w, r, st, a, injectedUsage)
		return nil
	}
	return g.relayBuffered(w, r, st, a)
}

// isEventStream reports whether a response is SSE: it says so, or it says nothing about its
// type and the client asked for a stream.
func isEventStream(resp *http.Response, asked bool) bool {
	ct := resp.Header.Get("Content-Type")
	if ct == "" {
		return asked
	}
	return len(ct) >= 17 && strings.EqualFold(ct[:17], "text/event-stream")
}
