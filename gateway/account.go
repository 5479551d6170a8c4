package gateway

import (
	"context"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/telemetry"
	"github.com/llmgate/llmgate/tokenizer"
)

// otherModel is the metric label of a model the gateway does not serve.
const otherModel = "other"

// account is step 7, the one place a request's outcome is recorded: metrics, the server
// span, cost and the access-log line. It never logs prompt or completion text, nor any
// credential.
func (g *Gateway) account(ctx context.Context, st *requestState) {
	d := time.Since(st.start)
	if st.upstreamTotal == 0 && !st.upstreamStart.IsZero() { // cut before the backend's last byte
		st.upstreamTotal = time.Since(st.upstreamStart)
	}
	u, source := g.tokens(st)
	o := telemetry.Outcome{Code: st.status, Outcome: st.outcome, Duration: d, Err: st.err,
		Tokens: telemetry.Tokens{Input: u.input, Output: u.output, Source: source}, FinishReasons: st.reasons}
	if st.model != nil {
		o.CostUSD = st.model.price.cost(u.input, u.output)
		if st.backend != "" {
			o.ResponseModel = st.model.upstream
		}
	}
	st.tel.Finish(o)
	if g.log.Enabled(ctx, slog.LevelInfo) {
		g.log.LogAttrs(ctx, slog.LevelInfo, "request", accessLog(st, o)...)
	}
	if g.audit != nil && st.model != nil {
		g.auditRecord(st)
	}
}

// accessLog returns the fields of a request's access-log line (DESIGN §6).
func accessLog(st *requestState, o telemetry.Outcome) []slog.Attr {
	attrs := make([]slog.Attr, 0, 24)
	attrs = append(attrs,
		slog.String("request_id", st.id),
		slog.String("tenant", telemetry.NoTenant),
		slog.String("route", st.kind.path()),
		slog.String("model", clip(st.req.model)),
		slog.Bool("stream", st.req.stream),
		slog.Int("status", st.status),
		slog.String("outcome", st.outcome),
		slog.Duration("duration", o.Duration),
	)
	if id := st.tel.TraceID(); id != "" {
		attrs = append(attrs, slog.String("trace_id", id))
	}
	if st.model != nil && st.backend != "" {
		attrs = append(attrs, slog.String("served_model", st.model.upstream),
			slog.String("backend", st.backend),
			slog.Duration("upstream_duration", st.upstreamTotal))
	}
	if !st.firstToken.IsZero() {
		attrs = append(attrs, slog.Duration("ttft", st.firstToken.Sub(st.start)),
			slog.Duration("upstream_ttft", st.upstreamTTFT))
	}
	if o.Tokens.Source != "" {
		attrs = append(attrs, slog.Int("input_tokens", o.Tokens.Input), slog.Int("output_tokens", o.Tokens.Output),
			slog.String("token_source", o.Tokens.Source))
	}
	if o.CostUSD > 0 {
		attrs = append(attrs, slog.Float64("cost_usd", o.CostUSD))
	}
	if st.err != nil {
		attrs = append(attrs, slog.String("error", st.err.Error()))
	}
	return attrs
}

// tokens returns the request's token counts: the backend's usage when it sent one, else an
// estimate for a request that reached a backend, else nothing (source "").
func (g *Gateway) tokens(st *requestState) (usage, string) {
	if st.usage.ok {
		return st.usage, telemetry.SourceUpstream
	}
	if st.model == nil || !st.reached.Load() || st.status >= 400 && st.status != statusClientClosed {
		return usage{}, "" // a request no backend received costs nothing
	}
	c := st.model.counter
	return usage{input: countInput(c, st.req), output: st.outputEstimate(c)}, telemetry.SourceEstimated
}

// maxKeptText bounds the generated text a request keeps for an estimate of its output tokens;
// what comes after it is only measured, and estimated at the rate of the text kept. Memory per
// stream stays bounded whatever the output length.
const maxKeptText = 64 << 10

// keepText keeps generated text for an estimate, unless the backend already reported usage,
// or for the audit log (up to keepLimit) when it is on.
func (st *requestState) keepText(t []byte) {
	limit := max(st.keepLimit, maxKeptText)
	if st.usage.ok && st.keepLimit == 0 {
		return
	}
	room := limit - len(st.streamed)
	if len(t) > room {
		st.skippedText += len(t) - max(room, 0)
		t = t[:max(room, 0)]
	}
	st.streamed = append(st.streamed, t...)
}

// outputEstimate estimates the output tokens from the text kept, scaled by the bytes skipped.
func (st *requestState) outputEstimate(c *tokenizer.Counter) int {
	n := c.CountBytes(st.streamed)
	if st.skippedText == 0 || len(st.streamed) == 0 {
		return n
	}
	return int(math.Round(float64(n) * float64(len(st.streamed)+st.skippedText) / float64(len(st.streamed))))
}

// countInput estimates a request's prompt tokens: chat messages by OpenAI's counting rules,
// completion prompts and embedding inputs as text.
func countInput(c *tokenizer.Counter, req apiRequest) int {
	js := unsafeString(req.body)
	switch req.kind {
	case routeChat:
		var msgs []tokenizer.Message
		gjson.Get(js, "messages").ForEach(func(_, m gjson.Result) bool {
			msgs = append(msgs, tokenizer.Message{Role: m.Get("role").String(),
				Name: m.Get("name").String(), Content: messageText(m.Get("content"))})
			return true
		})
		return c.CountMessages(msgs)
	case routeCompletions:
		return countTexts(c, gjson.Get(js, "prompt"))
	default:
		return countTexts(c, gjson.Get(js, "input"))
	}
}

// messageText is a message's content as text: a string, or the text parts of an array joined
// with newlines, as vLLM joins them for the chat template.
func messageText(content gjson.Result) string {
	if !content.IsArray() {
		return content.String()
	}
	var parts []string
	content.ForEach(func(_, part gjson.Result) bool {
		if t := part.Get("text"); t.Type == gjson.String {
			parts = append(parts, t.Str)
		}
		return true
	})
	return strings.Join(parts, "\n")
}

// countTexts counts a prompt or input: a string, an array of strings, or token IDs. An array
// shares one encoding budget, however many elements it has.
func countTexts(c *tokenizer.Counter, v gjson.Result) int {
	switch {
	case v.Type == gjson.String:
		return c.Count(v.Str)
	case v.IsArray():
		ids := 0
		n := c.CountTexts(func(yield func(string) bool) {
			v.ForEach(func(_, e gjson.Result) bool {
				switch {
				case e.Type == gjson.String:
					return yield(e.Str)
				case e.Type == gjson.Number:
					ids++ // a token ID
				case e.IsArray():
					e.ForEach(func(_, _ gjson.Result) bool { ids++; return true }) // one prompt as token IDs
				}
				return true
			})
		})
		return n + ids
	}
	return 0
}
