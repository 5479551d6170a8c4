package test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

const (
	// requestTimeout bounds one request in a test.
	requestTimeout = 30 * time.Second
	// settleTimeout bounds the wait for something that follows a response: the access-log
	// line and metrics (recorded just after the last byte), llmsim's counters.
	settleTimeout = 5 * time.Second
)

// newHTTPClient returns a client of t's own that ignores proxy settings and closes its idle
// connections when t ends.
func newHTTPClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// reqCtx returns a context for one request, ended by requestTimeout or t's end.
func reqCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), requestTimeout)
	t.Cleanup(cancel)
	return ctx
}

// newRequestID returns a new X-Request-Id that names t, so that a log line or a recorded
// request can be traced to its test.
func newRequestID(t *testing.T) string {
	name := strings.NewReplacer("/", ".", " ", "_", "#", "_").Replace(t.Name())
	if len(name) > 80 {
		name = name[len(name)-80:]
	}
	return "e2e-" + name + "-" + rand.Text()[:12]
}

// send makes a request and returns the response with its body still open.
func send(t *testing.T, hc *http.Client, method, url, body string, hdr http.Header) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(reqCtx(t), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	maps.Copy(req.Header, hdr)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp
}

// do makes a request and reads the whole response.
func do(t *testing.T, hc *http.Client, method, url, body string, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	resp := send(t, hc, method, url, body, hdr)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, b
}

// headers builds an http.Header from name, value pairs.
func headers(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// sseReader reads the data of server-sent events one event at a time.
type sseReader struct {
	r *bufio.Reader
}

func newSSEReader(r io.Reader) *sseReader { return &sseReader{r: bufio.NewReader(r)} }

// next returns the data of the next event that has any, joined by newlines as SSE says.
// It returns io.EOF at a clean end between events and another error for a cut stream.
func (s *sseReader) next() (string, error) {
	var data []string
	seen := false
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && (seen || line != "") {
				return "", io.ErrUnexpectedEOF // the stream ended inside an event
			}
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if len(data) > 0 {
				return strings.Join(data, "\n"), nil
			}
			seen = false
			continue
		}
		seen = true
		if v, ok := strings.CutPrefix(line, "data:"); ok {
			data = append(data, strings.TrimPrefix(v, " "))
		}
	}
}

// readAllEvents reads events until the stream ends; err is nil at a clean end.
func readAllEvents(r io.Reader) ([]string, error) {
	s := newSSEReader(r)
	var events []string
	for {
		ev, err := s.next()
		if errors.Is(err, io.EOF) {
			return events, nil
		}
		if err != nil {
			return events, err
		}
		events = append(events, ev)
	}
}

// chunk is the part of a streamed chat or text completion chunk the tests read.
type chunk struct {
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Content *string `json:"content"`
		} `json:"delta"`
		Text         *string `json:"text"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *usage           `json:"usage"`
	Error *json.RawMessage `json:"error"`
}

// usage is OpenAI's usage object.
type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// parseChunk decodes one event's data, failing t if it is not a JSON chunk.
func parseChunk(t *testing.T, data string) chunk {
	t.Helper()
	var c chunk
	if err := json.Unmarshal([]byte(data), &c); err != nil {
		t.Fatalf("event data is not a JSON chunk: %v\ndata: %s", err, data)
	}
	return c
}

// streamText returns the concatenated content (chat) or text (completions) of the events, and
// the usage chunks among them.
func streamText(t *testing.T, events []string) (text string, usages []usage) {
	t.Helper()
	var sb strings.Builder
	for _, ev := range events {
		if ev == "[DONE]" {
			continue
		}
		c := parseChunk(t, ev)
		for _, ch := range c.Choices {
			if ch.Delta.Content != nil {
				sb.WriteString(*ch.Delta.Content)
			}
			if ch.Text != nil {
				sb.WriteString(*ch.Text)
			}
		}
		if c.Usage != nil {
			usages = append(usages, *c.Usage)
		}
	}
	return sb.String(), usages
}

// recordedRequest is one request as llmsim's GET /sim/requests lists it.
type recordedRequest struct {
	Method  string      `json:"method"`
	Path    string      `json:"path"`
	Headers http.Header `json:"headers"`
	Body    string      `json:"body"`
}

// simRequests returns the requests sim recorded with X-Request-Id id, waiting up to
// settleTimeout for at least one.
func simRequests(t *testing.T, sim *simProc, id string) []recordedRequest {
	t.Helper()
	hc := newHTTPClient(t)
	var got []recordedRequest
	poll(settleTimeout, func() bool {
		_, b := do(t, hc, http.MethodGet, sim.url+"/sim/requests", "", nil)
		var all []recordedRequest
		if err := json.Unmarshal(b, &all); err != nil {
			t.Fatalf("GET /sim/requests: %v\n%s", err, b)
		}
		got = got[:0]
		for _, r := range all {
			if r.Headers.Get("X-Request-Id") == id {
				got = append(got, r)
			}
		}
		return len(got) > 0
	})
	return got
}

// simRequest returns the one request sim recorded with X-Request-Id id.
func simRequest(t *testing.T, sim *simProc, id string) recordedRequest {
	t.Helper()
	reqs := simRequests(t, sim, id)
	if len(reqs) != 1 {
		t.Fatalf("llmsim recorded %d requests with X-Request-Id %q, want 1: %+v", len(reqs), id, reqs)
	}
	return reqs[0]
}

// simState is llmsim's GET /sim/state.
type simState struct {
	Running   int   `json:"running"`
	Waiting   int   `json:"waiting"`
	Completed int64 `json:"completed"`
	Cancelled int64 `json:"cancelled"`
	Failed    int64 `json:"failed"`
}

func getSimState(t *testing.T, hc *http.Client, sim *simProc) simState {
	t.Helper()
	_, b := do(t, hc, http.MethodGet, sim.url+"/sim/state", "", nil)
	var s simState
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("GET /sim/state: %v\n%s", err, b)
	}
	return s
}

// logLine is one JSON line of llmgate's log.
type logLine map[string]any

func (l logLine) str(key string) string {
	s, _ := l[key].(string)
	return s
}

func (l logLine) num(key string) (float64, bool) {
	n, ok := l[key].(float64)
	return n, ok
}

// requestLines returns the gateway's "request" log lines, in order.
func requestLines(t *testing.T, gw *gwProc) []logLine {
	t.Helper()
	var out []logLine
	for line := range strings.Lines(gw.logs()) {
		var l logLine
		if json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		if l.str("msg") == "request" {
			out = append(out, l)
		}
	}
	return out
}

// requestLog waits for the gateway's access-log line of the request with X-Request-Id id.
func requestLog(t *testing.T, gw *gwProc, id string) logLine {
	t.Helper()
	var found logLine
	if !poll(settleTimeout, func() bool {
		for _, l := range requestLines(t, gw) {
			if l.str("request_id") == id {
				found = l
				return true
			}
		}
		return false
	}) {
		t.Fatalf("llmgate logged no request line with request_id %q:\n%s", id, tail(gw.logs(), 4000))
	}
	return found
}

// scrape reads url as Prometheus text exposition.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	hc := newHTTPClient(t)
	resp, b := do(t, hc, http.MethodGet, url, "", nil)
	// Close the connection now, not at the test's end: a test that polls metrics would
	// otherwise hold one open connection on the server per scrape.
	hc.CloseIdleConnections()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d, want 200:\n%s", url, resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return fams
}

// metricValue sums the samples of the family name whose labels include want: counter, gauge
// and untyped values, or the sample count of histograms. found is false if none matched.
func metricValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) (sum float64, found bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if !hasLabels(m, want) {
			continue
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum, found
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// checkErrorBody checks that body is OpenAI's error shape: an "error" object with a
// non-empty message and type, and param and code keys (either may be null). It returns the
// code, "" when null.
func checkErrorBody(t *testing.T, body []byte) (code string) {
	t.Helper()
	var e struct {
		Error map[string]json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == nil {
		t.Errorf("error body is not {\"error\":{...}}: %v\nbody: %s", err, body)
		return ""
	}
	for _, key := range []string{"message", "type"} {
		var s string
		if json.Unmarshal(e.Error[key], &s) != nil || s == "" {
			t.Errorf("error body has no %s string: %s", key, body)
		}
	}
	for _, key := range []string{"param", "code"} {
		if _, ok := e.Error[key]; !ok {
			t.Errorf("error body has no %s key (null is fine): %s", key, body)
		}
	}
	_ = json.Unmarshal(e.Error["code"], &code) // null leaves it ""
	return code
}
