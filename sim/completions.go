package sim

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/llmgate/llmgate/tokenizer"
)

// handleChat serves POST /v1/chat/completions.
func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	var req chatRequest
	if !decode(w, r, &req) {
		return
	}
	model, ok := s.model(w, req.Model)
	if !ok {
		return
	}
	if len(req.Messages) == 0 {
		writeError(w, http.StatusBadRequest, "messages: must not be empty")
		return
	}
	msgs := make([]tokenizer.Message, len(req.Messages))
	var key strings.Builder
	for i, m := range req.Messages {
		msgs[i] = tokenizer.Message{Role: m.Role, Name: m.Name, Content: string(m.Content)}
		fmt.Fprintf(&key, "%d:%s\x00%d:%s\x00%d:%s\x00", len(m.Role), m.Role, len(m.Name), m.Name,
			len(m.Content), m.Content)
	}
	maxTokens := req.MaxTokens
	if req.MaxCompletionTokens != nil {
		maxTokens = req.MaxCompletionTokens
	}
	prompt := s.counter.CountMessages(msgs)
	j, ok := s.newJob(w, r, arrived, model, prompt, req.N, maxTokens, []string{key.String()})
	if !ok || s.injectFailure(w, j.ov) {
		return
	}
	meta := respMeta{kind: endpointChat, id: newID("chatcmpl-"), created: arrived.Unix(), model: model,
		choices: len(j.sources)}
	s.execute(r.Context(), j, s.newSink(w, meta, req.Stream, req.StreamOptions, j.ov))
}

// handleCompletions serves POST /v1/completions. Each prompt of an array gets n choices,
// indexed prompt by prompt.
func (s *Server) handleCompletions(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	var req completionRequest
	if !decode(w, r, &req) {
		return
	}
	model, ok := s.model(w, req.Model)
	if !ok {
		return
	}
	if len(req.Prompt) == 0 {
		writeError(w, http.StatusBadRequest, "prompt: must not be empty")
		return
	}
	prompt := 0
	keys := make([]string, len(req.Prompt))
	for i, p := range req.Prompt {
		if p.tokens == 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("prompt[%d]: token list must not be empty", i))
			return
		}
		prompt += s.inputTokens(p)
		keys[i] = p.text
	}
	j, ok := s.newJob(w, r, arrived, model, prompt, req.N, req.MaxTokens, keys)
	if !ok || s.injectFailure(w, j.ov) {
		return
	}
	meta := respMeta{kind: endpointText, id: newID("cmpl-"), created: arrived.Unix(), model: model,
		choices: len(j.sources)}
	s.execute(r.Context(), j, s.newSink(w, meta, req.Stream, req.StreamOptions, j.ov))
}

// inputTokens returns how many tokens in counts as.
func (s *Server) inputTokens(in textInput) int {
	if in.tokens >= 0 {
		return in.tokens
	}
	return s.counter.Count(in.text)
}

// newSink returns the sink for a completion request.
func (s *Server) newSink(w http.ResponseWriter, meta respMeta, stream bool, opts *streamOptions, ov overrides) sink {
	if stream {
		return newStreamSink(w, meta, newUsagePolicy(opts, ov.usage))
	}
	return newBufferSink(w, meta, ov)
}

// newJob checks a completion request's n and max_tokens and its X-Sim-* headers and
// returns its job, with n choices per prompt key. It answers 400 and returns false when
// something is invalid.
func (s *Server) newJob(w http.ResponseWriter, r *http.Request, arrived time.Time, model string,
	prompt int, n, maxTokens *int, keys []string) (*job, bool) {
	ov, err := parseOverrides(r.Header, s.cfg.TTFT, s.cfg.ITL)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return nil, false
	}
	choices := 1
	if n != nil {
		choices = *n
	}
	if choices < 1 || choices*len(keys) > maxChoices {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("n: must be between 1 and %d choices in all, got %d",
			maxChoices, choices*len(keys)))
		return nil, false
	}
	length, finish := s.cfg.MaxTokens, finishStop
	if maxTokens != nil {
		length, finish = *maxTokens, finishLength
		if length < 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("max_tokens: must be at least 1, got %d", length))
			return nil, false
		}
	}
	room := s.cfg.KVTokens - prompt
	switch {
	case maxTokens != nil && length > room, room < 1:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("This model's maximum context length is %d tokens. "+
			"However, you requested %d tokens (%d in the messages, %d in the completion). "+
			"Please reduce the length of the messages or completion.", s.cfg.KVTokens, prompt+length, prompt, length))
		return nil, false
	case length > room:
		length, finish = room, finishLength
	}
	j := &job{model: model, promptTokens: prompt, length: length, finish: finish, ov: ov, arrived: arrived,
		sources: make([]wordSource, 0, choices*len(keys))}
	for _, k := range keys {
		for i := range choices {
			rng := newRand(s.cfg.Seed, domainText, model, k, fmt.Sprint(i))
			j.sources = append(j.sources, wordSource{rng: rng, words: s.words})
		}
	}
	return j, true
}
