package gateway

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/gateway/sse"
	"github.com/llmgate/llmgate/telemetry"
)

// relayStream relays an SSE answer event by event, flushing each as soon as it is complete,
// while it times the first token and the gaps between tokens and takes usage from the last
// chunk that carries it. Comments and keep-alives pass unchanged. When the gateway itself asked
// for usage, the usage-only chunk is dropped before the client sees it.
//
// Once the headers are out the status is fixed: a stream that fails afterwards is aborted with
// http.ErrAbortHandler, never ended with [DONE].
func (g *Gateway) relayStream(w http.ResponseWriter, r *http.Request, st *requestState, a *attempt, injectedUsage bool) {
	h := w.Header()
	copyResponseHeaders(h, a.resp.Header)
	h.Set("X-LLMGate-Backend", st.backend)
	h.Set("X-Accel-Buffering", "no") // tell a buffering proxy in front to pass events on at once
	h.Set("Server-Timing", serverTiming(time.Since(st.start)-st.upstreamHeaders, st.upstreamHeaders))
	st.committed = true
	w.WriteHeader(a.resp.StatusCode)
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		abort(st, errClientGone(r.Context(), err))
	}
	// Until the first token the backend may still be queueing and prefilling: that wait is
	// bounded by first_byte_timeout, like a non-streaming answer's, not by chunk_timeout.
	chunkTimeout := a.body.d
	a.body.d = g.cfg.Upstream.FirstByteTimeout.D()
	// A client that stops reading would hold the stream, and the backend, forever; each write
	// gets chunk_timeout. The deadline is cleared for the connection's next request. A writer
	// without deadlines is found out once, not with an error per chunk.
	deadlines := rc.SetWriteDeadline(time.Time{}) == nil
	if deadlines {
		defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
	}
	obs := st.tel.Stream()
	st.textBuf = g.texts.Get().(*[]byte)
	st.streamed = (*st.textBuf)[:0]
	dec := sse.NewDecoder(a.resp.Body)
	var inBandError bool
	for {
		ev, err := dec.Next()
		if err != nil {
			g.endStream(w, r, st, a, obs, err, inBandError)
			return
		}
		read := time.Now()
		var c chunkInfo
		if !ev.Comment && len(ev.Data) > 0 && !sse.IsDone(ev.Data) {
			c = inspectChunk(st, ev.Data)
			inBandError = inBandError || c.err
			if c.usageOnly && injectedUsage {
				continue
			}
		}
		if deadlines {
			_ = rc.SetWriteDeadline(read.Add(chunkTimeout))
		}
		if _, err := w.Write(ev.Raw); err != nil {
			abort(st, errClientGone(r.Context(), err))
		}
		if err := rc.Flush(); err != nil {
			abort(st, errClientGone(r.Context(), err))
		}
		if c.content {
			if st.firstToken.IsZero() {
				a.body.d = chunkTimeout
			}
			st.tokenWritten(obs, read)
		}
	}
}

// tokenWritten times a content delta that reached the client; read is when it left the backend.
func (st *requestState) tokenWritten(obs telemetry.StreamObserver, read time.Time) {
	now := time.Now()
	if st.firstToken.IsZero() {
		st.firstToken = now
		st.upstreamTTFT = read.Sub(st.upstreamStart)
		st.tel.FirstToken(obs, now.Sub(st.start), st.upstreamTTFT)
	} else {
		telemetry.Observe(obs.InterToken, now.Sub(st.lastToken))
	}
	st.lastToken = now
}

// endStream records how a stream ended. A clean end writes the ttft trailer; a failure aborts
// the client's connection, so that the client cannot take a cut stream for a whole one.
func (g *Gateway) endStream(w http.ResponseWriter, r *http.Request, st *requestState, a *attempt,
	obs telemetry.StreamObserver, err error, inBandError bool) {
	st.upstreamTotal = time.Since(st.upstreamStart)
	if !st.firstToken.IsZero() {
		telemetry.Observe(obs.Generation, st.lastToken.Sub(st.firstToken))
	}
	if errors.Is(err, io.EOF) {
		if inBandError {
			st.outcome = outcomeUpstreamError
		}
		if !st.firstToken.IsZero() {
			w.Header().Set(http.TrailerPrefix+"Server-Timing",
				"ttft;dur="+strconv.FormatFloat(ms(st.firstToken.Sub(st.start)), 'f', 3, 64))
		}
		return
	}
	var e *apiError
	if errors.Is(err, sse.ErrEventTooLarge) {
		e = errUpstreamTransport(st.backend, err)
	} else {
		e = g.classify(r, a, err)
	}
	a.err = e
	cut(r.Context(), st, e) // handle's deferred finish still records the request
}

// chunkInfo is what the gateway reads from one streamed chunk.
type chunkInfo struct {
	content   bool // carries generated content (text, reasoning or a tool call)
	usageOnly bool // carries usage and no choices
	err       bool // an in-band {"error": ...} event, or data that is not JSON
}

var (
	usageKey = []byte(`"usage"`)
	errorKey = []byte(`"error"`)
)

// inspectChunk reads one chunk's data: usage, content and in-band errors. It allocates nothing
// unless it must keep streamed text for an estimate.
func inspectChunk(st *requestState, data []byte) chunkInfo {
	var c chunkInfo
	js := unsafeString(data)
	if !framedObject(data) || bytes.Contains(data, errorKey) && gjson.Get(js, "error").Exists() {
		c.err = true // not a JSON object, or an in-band error: relayed, but the request failed upstream
		return c
	}
	if bytes.Contains(data, usageKey) {
		if u := usageFrom(gjson.Get(js, "usage")); u.ok {
			st.usage = u
			c.usageOnly = noChoices(gjson.Get(js, "choices"))
		}
	}
	choice := gjson.Get(js, "choices.0")
	if !choice.Exists() {
		return c
	}
	if st.reasons != nil {
		if fr := choice.Get("finish_reason"); fr.Type == gjson.String {
			st.reasons = append(st.reasons, strings.Clone(fr.Str))
		}
	}
	if st.req.kind == routeCompletions {
		return c.withText(st, choice.Get("text"))
	}
	delta := choice.Get("delta")
	c = c.withText(st, delta.Get("content"))
	c = c.withText(st, delta.Get("reasoning_content"))
	c = c.withText(st, delta.Get("reasoning"))
	if delta.Get("tool_calls").Exists() {
		c.content = true
	}
	return c
}

// framedObject reports whether data is framed as a JSON object: '{' first and '}' last,
// white space aside. That catches the malformed events servers send (a truncated chunk, plain
// text, an HTML error page) for a few nanoseconds; validating every chunk whole would add
// ~0.13 µs, a sixth of the chunk's inspection. A buffered answer is validated whole.
func framedObject(data []byte) bool {
	data = bytes.TrimSpace(data)
	return len(data) >= 2 && data[0] == '{' && data[len(data)-1] == '}'
}

// noChoices reports whether a chunk's choices are absent or an empty array.
func noChoices(ch gjson.Result) bool {
	if !ch.Exists() || ch.Type == gjson.Null {
		return true
	}
	return ch.IsArray() && len(strings.TrimSpace(ch.Raw[1:len(ch.Raw)-1])) == 0
}

// withText notes a non-empty text field and keeps its text for an estimate.
func (c chunkInfo) withText(st *requestState, t gjson.Result) chunkInfo {
	if t.Type == gjson.String && t.Raw != `""` {
		c.content = true
		st.keepText(unsafeBytes(t.Str))
	}
	return c
}
