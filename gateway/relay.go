package gateway

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"
)

// maxPooledBuffer is the largest response buffer kept for reuse; larger ones are left to the GC.
const maxPooledBuffer = 1 << 20

// relayBuffered relays a non-streaming answer, or any error answer: it reads the whole body
// (so that it can read usage and set Server-Timing), then writes status, headers and body as
// the backend sent them. An upstream's own error status and body reach the client unchanged.
func (g *Gateway) relayBuffered(w http.ResponseWriter, r *http.Request, st *requestState, a *attempt) error {
	pooled := g.buffers.Get().(*[]byte)
	ab, err := readAnswer(a.resp.Body, a.resp.ContentLength, g.cfg.MaxResponseBytes, g.answers, *pooled)
	defer func() {
		ab.release()
		if ab.b != nil && cap(ab.b) <= maxPooledBuffer {
			*pooled = ab.b[:0]
		}
		g.buffers.Put(pooled)
	}()
	switch {
	case errors.Is(err, errAnswerTooLarge):
		return errUpstreamTooLarge(st.backend, g.cfg.MaxResponseBytes)
	case errors.Is(err, errNoAnswerMemory):
		g.relayPassThrough(w, r, st, a, ab.b)
		return nil
	case err != nil:
		a.err = g.classify(r, a, err)
		return a.err
	}
	st.upstreamTotal = time.Since(st.upstreamStart)
	body, status := ab.b, a.resp.StatusCode
	st.status, st.outcome = status, outcomeForStatus(status)
	if status < 300 && !gjson.Valid(unsafeString(body)) {
		st.outcome = outcomeUpstreamError // relayed as sent, but the backend failed
	}
	if status < 300 {
		st.usage = usageFrom(gjson.Get(unsafeString(body), "usage"))
		keepResponseText(st, body)
		if st.reasons != nil {
			for _, fr := range gjson.Get(unsafeString(body), "choices.#.finish_reason").Array() {
				if fr.Type == gjson.String {
					st.reasons = append(st.reasons, strings.Clone(fr.Str))
				}
			}
		}
	}
	h := w.Header()
	copyResponseHeaders(h, a.resp.Header)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-LLMGate-Backend", st.backend)
	h.Set("Server-Timing", serverTiming(time.Since(st.start)-st.upstreamTotal, st.upstreamTotal))
	st.committed = true
	w.WriteHeader(status)
	if err := writeAnswer(w, body, g.cfg.Upstream.ChunkTimeout.D()); err != nil {
		abort(st, errClientGone(r.Context(), err))
	}
	return nil
}

// release gives the request's body memory back to body_memory_bytes, and returns its pooled
// stream-text buffer unless that grew too large to keep. It runs once the request is
// accounted.
func (g *Gateway) release(st *requestState) {
	if st.releaseBody != nil {
		st.releaseBody()
	}
	g.intake.give(st.patchHeld)
	if st.textBuf == nil || cap(st.streamed) > maxPooledBuffer {
		return
	}
	*st.textBuf = st.streamed[:0]
	g.texts.Put(st.textBuf)
	st.textBuf, st.streamed = nil, nil
}

// outcomeForStatus labels an upstream's answer by its status.
func outcomeForStatus(status int) string {
	switch {
	case status >= 500 || status == http.StatusTooManyRequests:
		return outcomeUpstreamError
	case status >= 400:
		return outcomeInvalid
	default:
		return outcomeOK
	}
}

// usage is a request's token counts; ok is false when the backend reported none.
type usage struct {
	input, output int
	ok            bool
}

// usageFrom reads an OpenAI usage object.
func usageFrom(u gjson.Result) usage {
	if !u.IsObject() {
		return usage{}
	}
	in := u.Get("prompt_tokens")
	out := u.Get("completion_tokens")
	if !in.Exists() && !out.Exists() {
		return usage{}
	}
	return usage{input: int(in.Int()), output: int(out.Int()), ok: true}
}

// keepResponseText keeps the generated text of a non-streaming answer, for estimates or the
// audit log; it does not look for the text when neither needs it.
func keepResponseText(st *requestState, body []byte) {
	if st.usage.ok && st.keepLimit == 0 {
		return
	}
	var path string
	switch st.req.kind {
	case routeChat:
		path = "choices.#.message.content"
	case routeCompletions:
		path = "choices.#.text"
	default:
		return
	}
	for _, t := range gjson.Get(unsafeString(body), path).Array() {
		st.keepText(unsafeBytes(t.Str))
	}
}

// serverTiming formats a Server-Timing value with the gateway's own time and the upstream's,
// in milliseconds.
func serverTiming(gateway, upstream time.Duration) string {
	b := make([]byte, 0, 48)
	b = append(b, "gateway;dur="...)
	b = strconv.AppendFloat(b, ms(max(gateway, 0)), 'f', 3, 64)
	b = append(b, ", upstream;dur="...)
	b = strconv.AppendFloat(b, ms(upstream), 'f', 3, 64)
	return string(b)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// unsafeString views b as a string without copying, so that gjson reads it without
// allocating. The string must not outlive b's contents; callers copy what they keep.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// unsafeBytes views s as bytes without copying; the bytes must not be modified.
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
