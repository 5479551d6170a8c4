package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// publicRoutes is the OpenAI-compatible API. /metrics and /admin are not on it.
func (g *Gateway) publicRoutes() http.Handler {
	r := chi.NewRouter()
	r.Use(g.withRequestID, g.recoverPanics, middleware.GetHead) // the ID first, so a panic's log line has it
	r.Post("/v1/chat/completions", g.handle(routeChat))
	r.Post("/v1/completions", g.handle(routeCompletions))
	r.Post("/v1/embeddings", g.handle(routeEmbeddings))
	r.Get("/v1/models", g.listModels)
	r.Get("/v1/models/*", g.getModel) // model IDs may contain slashes (org/name)
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) { writeText(w, http.StatusOK, "ok") })
	r.Get("/readyz", g.ready)
	routeErrors(r)
	return r
}

// routeErrors answers a path that r does not route with 404, and a method it does not route
// for a path it knows with 405 and the Allow header. chi takes any method it has no route
// for as a 405, even on an unknown path: that is a 404.
func routeErrors(r *chi.Mux) {
	r.NotFound(func(w http.ResponseWriter, req *http.Request) {
		refuseBody(w, req)
		writeError(w, errNotFoundRoute(req.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		refuseBody(w, req)
		allowed := allowedMethods(r, req.URL.Path)
		if allowed == "" {
			writeError(w, errNotFoundRoute(req.URL.Path))
			return
		}
		w.Header().Set("Allow", allowed)
		writeError(w, errMethod(req.Method, req.URL.Path))
	})
}

// routeMethods are the methods allowedMethods looks for, in the order the Allow header lists them.
var routeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions}

// allowedMethods lists the methods that mux routes for path, for the Allow header of a 405.
// A GET route serves HEAD too (middleware.GetHead).
func allowedMethods(mux *chi.Mux, path string) string {
	var allowed []string
	get := mux.Match(chi.NewRouteContext(), http.MethodGet, path)
	for _, m := range routeMethods {
		if (m == http.MethodHead && get) || mux.Match(chi.NewRouteContext(), m, path) {
			allowed = append(allowed, m)
		}
	}
	return strings.Join(allowed, ", ")
}

// adminRoutes is the operators' listener.
func (g *Gateway) adminRoutes() http.Handler {
	r := chi.NewRouter()
	r.Use(g.recoverPanics, middleware.GetHead)
	// OpenMetrics is offered so that a scraper asking for it gets the exemplars (trace IDs)
	// of the latency histograms; a protobuf scrape also gets their native buckets.
	r.Handle("/metrics", promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{Registry: g.reg, EnableOpenMetrics: true}))
	if g.cfg.Telemetry.Pprof {
		r.Mount("/debug", middleware.Profiler())
	}
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) { writeText(w, http.StatusOK, "ok") })
	routeErrors(r)
	return r
}

// ready answers 503 once shutdown has begun, or while no backend is healthy.
func (g *Gateway) ready(w http.ResponseWriter, _ *http.Request) {
	if g.notReady.Load() {
		writeText(w, http.StatusServiceUnavailable, "shutting down")
		return
	}
	if len(g.models.Load().names) == 0 {
		writeText(w, http.StatusServiceUnavailable, "no model listed by any backend yet")
		return
	}
	for _, b := range g.backends {
		if b.up.Load() {
			writeText(w, http.StatusOK, "ok")
			return
		}
	}
	writeText(w, http.StatusServiceUnavailable, "no healthy backend")
}

func writeText(w http.ResponseWriter, status int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(s + "\n"))
}

// modelCard is one entry of /v1/models, in OpenAI's shape.
type modelCard struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func (g *Gateway) card(name string) modelCard {
	return modelCard{ID: name, Object: "model", Created: g.started.Unix(), OwnedBy: "llmgate"}
}

func (g *Gateway) listModels(w http.ResponseWriter, _ *http.Request) {
	t := g.models.Load()
	list := struct {
		Object string      `json:"object"`
		Data   []modelCard `json:"data"`
	}{Object: "list", Data: make([]modelCard, 0, len(t.names))}
	for _, n := range t.names {
		list.Data = append(list.Data, g.card(n))
	}
	writeJSON(w, list)
}

func (g *Gateway) getModel(w http.ResponseWriter, r *http.Request) {
	id, err := url.PathUnescape(chi.URLParam(r, "*")) // chi matches the raw path when it has escapes
	if err != nil {
		writeError(w, errModelNotFound(chi.URLParam(r, "*")))
		return
	}
	if _, err := g.lookupModel(id); err != nil {
		writeError(w, asAPIError(err))
		return
	}
	writeJSON(w, g.card(id))
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, errInternal(err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}

// recoverPanics turns a panic of a handler other than the proxy's (which recovers its own, see
// finish) into a 500 and a log line. http.ErrAbortHandler, the deliberate abort of a request,
// passes on so that net/http cuts the connection.
func (g *Gateway) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer g.recovered(r.Context(), w)
		next.ServeHTTP(w, r)
	})
}

// recovered is recoverPanics' deferred half; recover works here because it is called
// directly by the deferred call.
func (g *Gateway) recovered(ctx context.Context, w http.ResponseWriter) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler { //nolint:errorlint // recover returns the value as panicked
		panic(v)
	}
	g.log.ErrorContext(ctx, "handler panic", slog.String("request_id", requestID(ctx)),
		slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
	writeError(w, errInternal(fmt.Errorf("panic: %v", v)))
}

type requestIDKey struct{}

// withRequestID takes the client's X-Request-Id when it is sane, or makes one, and returns it
// on the response.
func (g *Gateway) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = g.idPrefix + strconv.FormatUint(g.idSeq.Add(1), 36)
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// validRequestID accepts up to 128 visible ASCII characters, so that a client's ID cannot
// break a header or a log line.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := range len(id) {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// newIDPrefix returns a random per-process prefix; IDs are the prefix and a counter, unique
// across replicas without a random read per request.
func newIDPrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:]) + "-"
}
