package sim

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/llmgate/llmgate/tokenizer"
)

// maxBodyBytes caps a /v1 request body.
const maxBodyBytes = 32 << 20

// maxChoices caps n (times the number of prompts) per request.
const maxChoices = 128

// promptEncoding is the encoding prompts are counted with.
const promptEncoding = "cl100k_base"

// Server is the simulated inference server: an http.Handler for the whole HTTP surface. Create
// it with [New]. It is safe for concurrent use and starts no goroutines.
type Server struct {
	cfg     Config
	log     *slog.Logger
	created int64
	counter *tokenizer.Counter
	words   []string
	eng     *engine
	met     *metrics
	rec     recorder
	mux     *http.ServeMux

	rngMu sync.Mutex
	rng   *mathrand.Rand // error-rate draws
}

// New returns a Server for cfg, with its own metrics registry. A nil log discards logs.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Models = slices.Clone(cfg.Models)
	counter, err := tokenizer.New(promptEncoding)
	if err != nil {
		return nil, fmt.Errorf("create tokenizer: %w", err)
	}
	words, err := tokenizer.SingleTokenWords(wordCount, "cl100k_base", "o200k_base")
	if err != nil {
		return nil, fmt.Errorf("list single-token words: %w", err)
	}
	if len(words) == 0 {
		return nil, errors.New("list single-token words: got none")
	}
	s := &Server{
		cfg:     cfg,
		log:     log,
		created: time.Now().Unix(),
		counter: counter,
		words:   words,
		eng:     newEngine(cfg.MaxNumSeqs, cfg.KVTokens, cfg.Models),
		rng:     mathrand.New(mathrand.NewPCG(cfg.Seed, 0x5eed)),
	}
	reg := prometheus.NewRegistry()
	if s.met, err = newMetrics(reg, cfg.Models, s.eng); err != nil {
		return nil, err
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST /v1/chat/completions", s.handleChat)
	s.mux.HandleFunc("POST /v1/completions", s.handleCompletions)
	s.mux.HandleFunc("POST /v1/embeddings", s.handleEmbeddings)
	s.mux.HandleFunc("GET /v1/models", s.handleModels)
	s.mux.HandleFunc("GET /health", func(http.ResponseWriter, *http.Request) {})
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("GET /sim/requests", s.handleRequests)
	s.mux.HandleFunc("DELETE /sim/requests", s.handleResetRequests)
	s.mux.HandleFunc("GET /sim/state", s.handleState)
	return s, nil
}

// ServeHTTP records /v1 requests, checks the API key, and routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/v1/") {
		if !s.record(w, r) || !s.authorize(w, r) {
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// State returns a snapshot of the simulator's load and counters.
func (s *Server) State() State {
	return s.eng.state()
}

// record reads r's body, keeps a copy of the request, and gives r a fresh body. It answers
// 413 and returns false if the body is too large.
func (s *Server) record(w http.ResponseWriter, r *http.Request) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
		} else {
			writeError(w, http.StatusBadRequest, "read request body: "+err.Error())
		}
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	s.rec.add(RecordedRequest{Method: r.Method, Path: r.URL.Path, Headers: r.Header.Clone(), Body: string(body)})
	return true
}

// authorize answers 401 and returns false when an API key is set and r does not carry it.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.APIKey == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.APIKey)) == 1 {
		return true
	}
	writeError(w, http.StatusUnauthorized, "invalid or missing API key")
	return false
}

// handleModels lists the served models.
func (s *Server) handleModels(w http.ResponseWriter, _ *http.Request) {
	list := modelList{Object: "list", Data: make([]modelCard, len(s.cfg.Models))}
	for i, m := range s.cfg.Models {
		list.Data[i] = modelCard{ID: m, Object: "model", Created: s.created, OwnedBy: "llmsim",
			Root: m, MaxModelLen: s.cfg.KVTokens}
	}
	writeJSON(w, http.StatusOK, list)
}

// handleRequests lists the recorded requests, oldest first.
func (s *Server) handleRequests(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.rec.list())
}

// handleResetRequests forgets the recorded requests.
func (s *Server) handleResetRequests(w http.ResponseWriter, _ *http.Request) {
	s.rec.reset()
	w.WriteHeader(http.StatusNoContent)
}

// handleState reports the engine's state.
func (s *Server) handleState(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.eng.state())
}

// decode reads r's JSON body into v, answering 400 and returning false if it is not valid.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(r.Body)
	if err == nil {
		err = json.Unmarshal(body, v)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid request body: "+err.Error())
		return false
	}
	return true
}

// model returns the served model name asks for (the first model if name is empty), or
// answers 404 and returns false.
func (s *Server) model(w http.ResponseWriter, name string) (string, bool) {
	if name == "" {
		return s.cfg.Models[0], true
	}
	if slices.Contains(s.cfg.Models, name) {
		return name, true
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("The model `%s` does not exist.", name))
	return "", false
}

// injectFailure answers a request that X-Sim-Fail or -error-rate fails at once, and reports
// whether it did.
func (s *Server) injectFailure(w http.ResponseWriter, ov overrides) bool {
	switch {
	case ov.fault.kind == fault429:
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "simulated rate limit")
	case ov.fault.kind == fault500 || s.drawError():
		writeError(w, http.StatusInternalServerError, "simulated internal server error")
	default:
		return false
	}
	s.eng.record(outcomeFailed)
	return true
}

// drawError reports whether this request falls into -error-rate.
func (s *Server) drawError() bool {
	if s.cfg.ErrorRate == 0 {
		return false
	}
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.Float64() < s.cfg.ErrorRate
}

// newID returns a response ID with prefix.
func newID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return prefix + hex.EncodeToString(b[:])
}
