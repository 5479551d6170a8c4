package sim

import (
	"net/http"
	"sync"
)

// recordLimit is how many requests GET /sim/requests keeps.
const recordLimit = 100

// RecordedRequest is one /v1 request as the simulator received it, as GET /sim/requests
// lists it.
type RecordedRequest struct {
	// Method is the HTTP method.
	Method string `json:"method"`
	// Path is the URL path.
	Path string `json:"path"`
	// Headers are the request's header fields, names in canonical form; Host is not among them.
	Headers http.Header `json:"headers"`
	// Body is the raw request body.
	Body string `json:"body"`
}

// recorder keeps the last recordLimit requests. It is safe for concurrent use.
type recorder struct {
	mu   sync.Mutex
	reqs []RecordedRequest // oldest first
}

// add records r, dropping the oldest record when full.
func (rc *recorder) add(r RecordedRequest) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.reqs) == recordLimit {
		clear(rc.reqs[:1])
		rc.reqs = rc.reqs[1:]
	}
	rc.reqs = append(rc.reqs, r)
}

// list returns the records, oldest first.
func (rc *recorder) list() []RecordedRequest {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]RecordedRequest{}, rc.reqs...)
}

// reset forgets every record.
func (rc *recorder) reset() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.reqs = nil
}
