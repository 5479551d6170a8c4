package sim

import (
	"fmt"
	"net/http"
	"time"
)

// handleEmbeddings serves POST /v1/embeddings. The request takes a slot for the prefill time,
// then gets one deterministic unit vector per input.
func (s *Server) handleEmbeddings(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	var req embeddingRequest
	if !decode(w, r, &req) {
		return
	}
	model, ok := s.model(w, req.Model)
	if !ok {
		return
	}
	if len(req.Input) == 0 {
		writeError(w, http.StatusBadRequest, "input: must not be empty")
		return
	}
	prompt := 0
	for i, in := range req.Input {
		if in.tokens == 0 || in.text == "" {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("input[%d]: must not be empty", i))
			return
		}
		prompt += s.inputTokens(in)
	}
	dim := s.cfg.EmbeddingDim
	if req.Dimensions != nil {
		if dim = *req.Dimensions; dim < 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("dimensions: must be at least 1, got %d", dim))
			return
		}
	}
	var b64 bool
	switch req.EncodingFormat {
	case "", "float":
	case "base64":
		b64 = true
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("encoding_format: want float or base64, got %q", req.EncodingFormat))
		return
	}
	if prompt > s.cfg.KVTokens {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("This model's maximum context length is %d tokens. "+
			"However, you requested %d tokens in the input.", s.cfg.KVTokens, prompt))
		return
	}
	ov, err := parseOverrides(r.Header, s.cfg.TTFT, s.cfg.ITL)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if s.injectFailure(w, ov) {
		return
	}
	j := &job{model: model, promptTokens: prompt, finish: finishStop, ov: ov, arrived: arrived}
	out := &embedSink{w: w, seed: s.cfg.Seed, model: model, inputs: req.Input, dim: dim, base64: b64, ov: ov}
	s.execute(r.Context(), j, out)
}
