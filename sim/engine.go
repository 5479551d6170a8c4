package sim

import (
	"context"
	"slices"
	"sync"
	"time"
)

// engine is the simulated GPU: it admits at most maxSeqs requests at once, queues the rest in
// FIFO order and tracks the KV-cache tokens that running requests hold. It is safe for
// concurrent use and starts no goroutines.
type engine struct {
	maxSeqs  int
	kvTokens int

	mu      sync.Mutex
	running int
	queue   []*waiter
	held    int              // KV-cache tokens held by running requests
	models  map[string]*load // per model; the key set is fixed at construction
	done    map[outcome]int64
}

// load counts one model's requests.
type load struct {
	running, waiting int
}

// waiter is a request queued for a slot; ready is closed once the slot is granted.
type waiter struct {
	model string
	ready chan struct{}
}

// seq is a running request's claim on the engine: one slot and the KV tokens it holds.
type seq struct {
	e     *engine
	model string
	held  int
}

// State is a snapshot of the simulator's load, as GET /sim/state reports it.
type State struct {
	// Running is how many requests are generating.
	Running int `json:"running"`
	// Waiting is how many requests wait for a slot.
	Waiting int `json:"waiting"`
	// KVCacheUsage is the fraction (0..1) of the KV cache that running requests hold.
	KVCacheUsage float64 `json:"kv_cache_usage"`
	// Completed counts requests answered in full.
	Completed int64 `json:"completed"`
	// Cancelled counts requests whose client went away before the end.
	Cancelled int64 `json:"cancelled"`
	// Failed counts requests answered with an injected failure (X-Sim-Fail or -error-rate).
	Failed int64 `json:"failed"`
}

// outcome is how a request ended.
type outcome int

const (
	outcomeCompleted outcome = iota // answered in full
	outcomeCancelled                // the client went away
	outcomeFailed                   // an injected failure that was answered
	outcomeAborted                  // an injected failure that needs the connection aborted
)

// String returns the outcome's name for logs.
func (o outcome) String() string {
	switch o {
	case outcomeCompleted:
		return "completed"
	case outcomeCancelled:
		return "cancelled"
	case outcomeFailed:
		return "failed"
	default:
		return "aborted"
	}
}

// newEngine returns an idle engine serving models.
func newEngine(maxSeqs, kvTokens int, models []string) *engine {
	e := &engine{
		maxSeqs:  maxSeqs,
		kvTokens: kvTokens,
		models:   make(map[string]*load, len(models)),
		done:     make(map[outcome]int64),
	}
	for _, m := range models {
		e.models[m] = &load{}
	}
	return e
}

// admit returns a slot for a request of model, waiting in FIFO order while all slots are
// taken. It returns the context's cause if ctx is done first; the request then leaves the
// queue at once.
func (e *engine) admit(ctx context.Context, model string) (*seq, error) {
	e.mu.Lock()
	if e.running < e.maxSeqs && len(e.queue) == 0 {
		e.startLocked(model)
		e.mu.Unlock()
		return &seq{e: e, model: model}, nil
	}
	w := &waiter{model: model, ready: make(chan struct{})}
	e.queue = append(e.queue, w)
	e.models[model].waiting++
	e.mu.Unlock()

	select {
	case <-w.ready:
		return &seq{e: e, model: model}, nil
	case <-ctx.Done():
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	select {
	case <-w.ready: // Granted just as ctx ended: hand the slot on.
		e.releaseLocked(model, 0)
	default:
		i := slices.Index(e.queue, w)
		e.queue = slices.Delete(e.queue, i, i+1)
		e.models[model].waiting--
	}
	return nil, context.Cause(ctx)
}

// startLocked counts one more running request of model.
func (e *engine) startLocked(model string) {
	e.running++
	e.models[model].running++
}

// releaseLocked frees a slot of model holding held KV tokens and grants free slots to the
// head of the queue.
func (e *engine) releaseLocked(model string, held int) {
	e.running--
	e.models[model].running--
	e.held -= held
	for e.running < e.maxSeqs && len(e.queue) > 0 {
		w := e.queue[0]
		e.queue = slices.Delete(e.queue, 0, 1)
		e.models[w.model].waiting--
		e.startLocked(w.model)
		close(w.ready)
	}
}

// itl returns the inter-token time for a running request whose base is base:
// base × (1 + (running − 1) / maxSeqs).
func (e *engine) itl(base time.Duration) time.Duration {
	e.mu.Lock()
	extra := max(e.running-1, 0)
	e.mu.Unlock()
	return base + base*time.Duration(extra)/time.Duration(e.maxSeqs)
}

// record counts a finished request.
func (e *engine) record(o outcome) {
	if o == outcomeAborted {
		o = outcomeFailed
	}
	e.mu.Lock()
	e.done[o]++
	e.mu.Unlock()
}

// state returns a snapshot of the engine.
func (e *engine) state() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	return State{
		Running:      e.running,
		Waiting:      len(e.queue),
		KVCacheUsage: e.kvUsageLocked(),
		Completed:    e.done[outcomeCompleted],
		Cancelled:    e.done[outcomeCancelled],
		Failed:       e.done[outcomeFailed],
	}
}

// modelLoads returns a copy of every model's counts and the KV-cache usage.
func (e *engine) modelLoads() (map[string]load, float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]load, len(e.models))
	for m, l := range e.models {
		out[m] = *l
	}
	return out, e.kvUsageLocked()
}

// kvUsageLocked returns held / kvTokens, capped at 1.
func (e *engine) kvUsageLocked() float64 {
	return min(float64(e.held)/float64(e.kvTokens), 1)
}

// hold adds n tokens to the KV cache held by s.
func (s *seq) hold(n int) {
	s.e.mu.Lock()
	s.held += n
	s.e.held += n
	s.e.mu.Unlock()
}

// release frees s's slot and KV tokens. Call it exactly once.
func (s *seq) release() {
	s.e.mu.Lock()
	s.e.releaseLocked(s.model, s.held)
	s.e.mu.Unlock()
}
