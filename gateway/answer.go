package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/tidwall/gjson"

	"golang.org/x/sync/semaphore"
)

// Bounds on buffered (non-streaming) answers.
const (
	// answerStep is the least the buffer of an answer grows by, and what each write to the
	// client sends under one deadline.
	answerStep = 64 << 10
)

// errAnswerTooLarge is the cause of a 502 for an answer over max_response_bytes.
var errAnswerTooLarge = errors.New("upstream answer exceeds max_response_bytes")

// errNoAnswerMemory says the answers budget has no room for more of an answer.
var errNoAnswerMemory = errors.New("response_memory_bytes is in use")

// answerBuffer holds one buffered answer. Its memory, counted by capacity, is reserved from
// the gateway-wide answers budget before the buffer grows, so that all buffered answers
// together never hold more than response_memory_bytes; release returns the reservation.
type answerBuffer struct {
	b      []byte
	budget *semaphore.Weighted
	held   int64
}

// readAnswer reads body whole, within limit bytes and the budget. It returns errAnswerTooLarge
// past limit, errNoAnswerMemory when the budget has no room (with what it read so far), or the
// read error.
func readAnswer(body io.Reader, contentLength, limit int64, budget *semaphore.Weighted, pooled []byte) (*answerBuffer, error) {
	if contentLength > limit {
		return &answerBuffer{budget: budget}, errAnswerTooLarge
	}
	ab := &answerBuffer{b: pooled[:0], budget: budget}
	if err := ab.reserve(int64(cap(pooled))); err != nil {
		ab.b = nil
		return ab, err
	}
	for {
		if len(ab.b) == cap(ab.b) {
			step := max(int64(cap(ab.b)), answerStep)
			if contentLength > 0 {
				step = max(contentLength+1-int64(len(ab.b)), 512) // read the known length, and see EOF
			}
			step = min(step, limit+1-int64(len(ab.b)))
			if err := ab.grow(step); err != nil {
				return ab, err
			}
		}
		n, err := body.Read(ab.b[len(ab.b):cap(ab.b)])
		ab.b = ab.b[:len(ab.b)+n]
		switch {
		case int64(len(ab.b)) > limit:
			return ab, errAnswerTooLarge
		case errors.Is(err, io.EOF):
			return ab, nil
		case err != nil:
			return ab, err
		}
	}
}

func (ab *answerBuffer) reserve(n int64) error {
	if n == 0 {
		return nil
	}
	if !ab.budget.TryAcquire(n) {
		return errNoAnswerMemory
	}
	ab.held += n
	return nil
}

// grow makes room for n more bytes, reserving them before it allocates.
func (ab *answerBuffer) grow(n int64) error {
	if err := ab.reserve(n); err != nil {
		return err
	}
	grown := make([]byte, len(ab.b), int64(cap(ab.b))+n)
	copy(grown, ab.b)
	ab.b = grown
	return nil
}

// release returns the buffer's reservation to the budget; the buffer must not be used after.
func (ab *answerBuffer) release() {
	if ab.held > 0 {
		ab.budget.Release(ab.held)
		ab.held = 0
	}
}

// writeAnswer writes body to the client in steps, each with its own deadline, so that a
// client that stops reading is cut after timeout while a slow one that keeps reading is not.
func writeAnswer(w http.ResponseWriter, body []byte, timeout time.Duration) error {
	rc := http.NewResponseController(w)
	deadlines := rc.SetWriteDeadline(time.Time{}) == nil
	if deadlines {
		defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
	}
	for len(body) > 0 {
		n := min(len(body), answerStep)
		if deadlines {
			_ = rc.SetWriteDeadline(time.Now().Add(timeout))
		}
		if _, err := w.Write(body[:n]); err != nil {
			return err
		}
		body = body[n:]
	}
	return rc.Flush() // the last bytes under the deadline too, before it is cleared
}

// relayPassThrough relays an answer that the answers budget has no room for without holding
// it: head (what was read before the budget ran out), then the rest as it arrives, each write
// within its deadline. The generation the backend has done is not thrown away, and memory
// stays bounded. Usage is read from the answer's tail. max_response_bytes still applies: an
// answer that passes it once the status is out is cut, as a failed stream is.
func (g *Gateway) relayPassThrough(w http.ResponseWriter, r *http.Request, st *requestState, a *attempt, head []byte) {
	h := w.Header()
	copyResponseHeaders(h, a.resp.Header)
	if a.resp.ContentLength >= 0 {
		h.Set("Content-Length", strconv.FormatInt(a.resp.ContentLength, 10))
	}
	h.Set("X-LLMGate-Backend", st.backend)
	h.Set("Server-Timing", serverTiming(time.Since(st.start)-st.upstreamHeaders, st.upstreamHeaders))
	st.status, st.outcome = a.resp.StatusCode, outcomeForStatus(a.resp.StatusCode)
	st.committed = true
	w.WriteHeader(st.status)
	var tail answerTail
	sent, limit, timeout := int64(0), g.cfg.MaxResponseBytes, g.cfg.Upstream.ChunkTimeout.D()
	buf := head
	if len(buf) == 0 {
		buf = make([]byte, 0, answerStep)
	}
	chunk := make([]byte, answerStep)
	for {
		if len(buf) > 0 {
			if sent += int64(len(buf)); sent > limit {
				cut(r.Context(), st, errUpstreamTooLarge(st.backend, limit))
			}
			if err := writeAnswer(w, buf, timeout); err != nil {
				abort(st, errClientGone(r.Context(), err))
			}
			tail.add(buf)
		}
		n, err := a.resp.Body.Read(chunk)
		buf = chunk[:n]
		if errors.Is(err, io.EOF) && n == 0 {
			break
		}
		if err != nil && !errors.Is(err, io.EOF) {
			cut(r.Context(), st, g.classify(r, a, err))
		}
	}
	st.upstreamTotal = time.Since(st.upstreamStart)
	if st.status < 300 {
		st.usage = usageFrom(tail.usage())
	}
}

// cut ends a response already begun because of e: the connection is aborted, so that the
// client cannot take the cut answer for a whole one. The status the client saw stays the
// request's, unless the request's context ended (the client went away, or shutdown cut it).
func cut(ctx context.Context, st *requestState, e *apiError) {
	st.outcome, st.err = e.outcome, e
	if ctx.Err() != nil {
		st.status = e.status
	}
	panic(http.ErrAbortHandler)
}

// answerTail keeps the last bytes of an answer relayed without being held, where an OpenAI
// answer puts its usage object.
type answerTail struct{ b []byte }

const answerTailSize = 4 << 10

func (t *answerTail) add(p []byte) {
	if len(p) >= answerTailSize {
		t.b = append(t.b[:0], p[len(p)-answerTailSize:]...)
		return
	}
	if len(t.b)+len(p) > 2*answerTailSize {
		t.b = append(t.b[:0], t.b[len(t.b)-(answerTailSize-len(p)):]...)
	}
	t.b = append(t.b, p...)
}

// usage returns the last "usage" object in the tail, or an empty result.
func (t *answerTail) usage() gjson.Result {
	i := bytes.LastIndex(t.b, usageKey)
	if i < 0 {
		return gjson.Result{}
	}
	rest := bytes.TrimLeft(t.b[i+len(usageKey):], " \t\r\n")
	if len(rest) == 0 || rest[0] != ':' {
		return gjson.Result{}
	}
	return gjson.ParseBytes(rest[1:])
}
