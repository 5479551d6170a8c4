package sim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// endpoint is which completion API a response speaks.
type endpoint int

const (
	endpointChat endpoint = iota // /v1/chat/completions
	endpointText                 // /v1/completions
)

// respMeta is what every chunk or response of one request repeats.
type respMeta struct {
	kind    endpoint
	id      string
	created int64
	model   string
	choices int
}

// object returns the OpenAI object name of a streamed chunk or a whole response.
func (m respMeta) object(streamed bool) string {
	switch {
	case m.kind == endpointText:
		return "text_completion"
	case streamed:
		return "chat.completion.chunk"
	default:
		return "chat.completion"
	}
}

// usagePolicy says where a stream carries usage.
type usagePolicy struct {
	continuous bool // on every chunk (stream_options.continuous_usage_stats)
	onFinish   bool // on the finish chunks (X-Sim-Usage: finish)
	include    bool // a usage-only chunk after the finish chunks (stream_options.include_usage)
}

// newUsagePolicy combines the request's stream options with X-Sim-Usage.
func newUsagePolicy(opts *streamOptions, mode usageMode) usagePolicy {
	if mode == usageOmit {
		return usagePolicy{}
	}
	var p usagePolicy
	if opts != nil {
		p.continuous, p.include = opts.ContinuousUsageStats, opts.IncludeUsage
	}
	p.onFinish = mode == usageFinish
	return p
}

// streamSink writes a job as server-sent events, flushing each event as it is written.
type streamSink struct {
	respMeta
	w      http.ResponseWriter
	rc     *http.ResponseController
	policy usagePolicy
	buf    []byte
}

// newStreamSink returns a sink that streams to w.
func newStreamSink(w http.ResponseWriter, meta respMeta, policy usagePolicy) *streamSink {
	return &streamSink{respMeta: meta, w: w, rc: http.NewResponseController(w), policy: policy}
}

// start sends the headers and, for chat, each choice's role chunk.
func (s *streamSink) start(u *usage) error {
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	s.w.WriteHeader(http.StatusOK)
	if s.kind == endpointChat {
		empty := ""
		for c := range s.choices {
			if err := s.send(s.chunk(c, "assistant", &empty, nil, s.running(u))); err != nil {
				return err
			}
		}
		return nil
	}
	if err := s.rc.Flush(); err != nil {
		return fmt.Errorf("flush headers: %w", err)
	}
	return nil
}

// token sends one token of choice.
func (s *streamSink) token(choice int, text string, u *usage) error {
	return s.send(s.chunk(choice, "", &text, nil, s.running(u)))
}

// malformed sends an event whose data is truncated JSON.
func (s *streamSink) malformed() error {
	return s.sendRaw(fmt.Appendf(nil, `{"id":%q,"object":%q,"choices":[{"index":0,`, s.id, s.object(true)))
}

// finish sends each choice's finish chunk, the usage-only chunk when asked, and [DONE].
func (s *streamSink) finish(reason string, u *usage) error {
	var text *string
	if s.kind == endpointText {
		empty := ""
		text = &empty
	}
	fu := s.running(u)
	if s.policy.onFinish {
		fu = u
	}
	for c := range s.choices {
		if err := s.send(s.chunk(c, "", text, &reason, fu)); err != nil {
			return err
		}
	}
	if s.policy.include {
		c := chunk{ID: s.id, Object: s.object(true), Created: s.created, Model: s.model,
			Choices: []chunkChoice{}, Usage: u}
		if err := s.send(c); err != nil {
			return err
		}
	}
	return s.sendRaw([]byte("[DONE]"))
}

// fail sends an in-band error event and [DONE], as vLLM does when generation fails mid-stream.
func (s *streamSink) fail() error {
	type detail struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    int    `json:"code"`
	}
	b, err := json.Marshal(struct {
		Error detail `json:"error"`
	}{detail{Message: "simulated failure during generation", Type: "server_error", Code: 500}})
	if err != nil {
		return fmt.Errorf("encode error event: %w", err)
	}
	if err := s.sendRaw(b); err != nil {
		return err
	}
	return s.sendRaw([]byte("[DONE]"))
}

// running returns u if every chunk carries usage, else nil.
func (s *streamSink) running(u *usage) *usage {
	if s.policy.continuous {
		return u
	}
	return nil
}

// chunk returns a one-choice chunk; role applies to chat only, text is the content.
func (s *streamSink) chunk(index int, role string, text, finish *string, u *usage) chunk {
	cc := chunkChoice{Index: index, FinishReason: finish}
	if s.kind == endpointChat {
		cc.Delta = &delta{Role: role, Content: text}
	} else {
		cc.Text = text
	}
	return chunk{ID: s.id, Object: s.object(true), Created: s.created, Model: s.model,
		Choices: []chunkChoice{cc}, Usage: u}
}

// send writes c as one event and flushes it.
func (s *streamSink) send(c chunk) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode chunk: %w", err)
	}
	return s.sendRaw(b)
}

// sendRaw writes data as one event and flushes it.
func (s *streamSink) sendRaw(data []byte) error {
	s.buf = append(s.buf[:0], "data: "...)
	s.buf = append(s.buf, data...)
	s.buf = append(s.buf, "\n\n"...)
	if _, err := s.w.Write(s.buf); err != nil {
		return fmt.Errorf("write event: %w", err)
	}
	if err := s.rc.Flush(); err != nil {
		return fmt.Errorf("flush event: %w", err)
	}
	return nil
}

// bufferSink collects a job's tokens and answers with one JSON body at the end.
type bufferSink struct {
	respMeta
	w         http.ResponseWriter
	texts     []strings.Builder
	withUsage bool
	truncate  bool // X-Sim-Fail: malformed
}

// newBufferSink returns a sink that answers w with one body.
func newBufferSink(w http.ResponseWriter, meta respMeta, ov overrides) *bufferSink {
	return &bufferSink{respMeta: meta, w: w, texts: make([]strings.Builder, meta.choices),
		withUsage: ov.usage != usageOmit, truncate: ov.fault.kind == faultMalformed}
}

func (b *bufferSink) start(*usage) error { return nil }
func (b *bufferSink) malformed() error   { return nil }

// token appends text to choice.
func (b *bufferSink) token(choice int, text string, _ *usage) error {
	b.texts[choice].WriteString(text)
	return nil
}

// finish answers with the whole completion.
func (b *bufferSink) finish(reason string, u *usage) error {
	resp := completion{ID: b.id, Object: b.object(false), Created: b.created, Model: b.model,
		Choices: make([]completionChoice, b.choices)}
	for i := range resp.Choices {
		text := b.texts[i].String()
		resp.Choices[i] = completionChoice{Index: i, FinishReason: reason}
		if b.kind == endpointChat {
			resp.Choices[i].Message = &message{Role: "assistant", Content: text}
		} else {
			resp.Choices[i].Text = &text
		}
	}
	if b.withUsage {
		resp.Usage = u
	}
	return writeBody(b.w, resp, b.truncate)
}

// fail answers 500.
func (b *bufferSink) fail() error {
	writeError(b.w, http.StatusInternalServerError, "simulated failure during generation")
	return nil
}

// embedSink answers an embeddings job once its prefill is done.
type embedSink struct {
	w      http.ResponseWriter
	seed   uint64
	model  string
	inputs textInputs
	dim    int
	base64 bool
	ov     overrides
}

func (e *embedSink) start(*usage) error              { return nil }
func (e *embedSink) token(int, string, *usage) error { return nil }
func (e *embedSink) malformed() error                { return nil }

// finish answers with the embeddings.
func (e *embedSink) finish(_ string, u *usage) error {
	resp := embeddingList{Object: "list", Model: e.model, Data: make([]embeddingData, len(e.inputs))}
	for i, in := range e.inputs {
		v := embedding(e.seed, e.model, in.text, e.dim)
		d := embeddingData{Object: "embedding", Index: i, Embedding: v}
		if e.base64 {
			d.Embedding = base64.StdEncoding.EncodeToString(float32Bytes(v))
		}
		resp.Data[i] = d
	}
	if e.ov.usage != usageOmit {
		resp.Usage = &usage{PromptTokens: u.PromptTokens, TotalTokens: u.PromptTokens}
	}
	return writeBody(e.w, resp, e.ov.fault.kind == faultMalformed)
}

// fail answers 500.
func (e *embedSink) fail() error {
	writeError(e.w, http.StatusInternalServerError, "simulated failure during embedding")
	return nil
}

// writeBody answers 200 with v as JSON, cut in half when truncate is set.
func writeBody(w http.ResponseWriter, v any, truncate bool) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	if truncate {
		b = b[:len(b)/2]
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write response: %w", err)
	}
	return nil
}
