package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

const (
	// promScrapeInterval is how often the test's Prometheus scrapes and evaluates its rules.
	promScrapeInterval = "1s"
	// promTimeout bounds each wait on Prometheus: start-up, the first scrapes, the answers.
	promTimeout = 60 * time.Second
	// promPollInterval is how often the test sends another round of traffic and asks again.
	promPollInterval = 500 * time.Millisecond
)

// promProc is a running Prometheus.
type promProc struct {
	*proc
	url string
}

// promConfig returns configs/prometheus.yml made to scrape this test's processes: llmgate's
// admin listener and llmsim as backend "sim" (through the file's own NAME@HOST:PORT
// relabelling), every promScrapeInterval, with configs/alerts.yml as its rule file and no
// DCGM exporter or Alertmanager.
func promConfig(t *testing.T, gwAdmin, simURL string) []byte {
	t.Helper()
	b, err := os.ReadFile(promConfFile)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("%s: %v", promConfFile, err)
	}
	rules, err := filepath.Abs(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	hostPort := func(u string) string { return strings.TrimPrefix(u, "http://") }
	global, _ := cfg["global"].(map[string]any)
	if global == nil {
		t.Fatalf("%s has no global section", promConfFile)
	}
	global["scrape_interval"], global["evaluation_interval"] = promScrapeInterval, promScrapeInterval
	cfg["rule_files"] = []string{rules}
	delete(cfg, "alerting")
	jobs, _ := cfg["scrape_configs"].([]any)
	var keep []any
	seen := map[string]bool{}
	for _, j := range jobs {
		job, _ := j.(map[string]any)
		name, _ := job["job_name"].(string)
		seen[name] = true
		switch name {
		case "llmgate":
			job["static_configs"] = []any{map[string]any{"targets": []string{hostPort(gwAdmin)}}}
		case "vllm":
			job["static_configs"] = []any{map[string]any{"targets": []string{"sim@" + hostPort(simURL)}}}
		case "dcgm":
			continue // no GPUs here
		default:
			t.Fatalf("%s: job %q is unknown to this test", promConfFile, name)
		}
		keep = append(keep, job)
	}
	if !seen["llmgate"] || !seen["vllm"] || !seen["dcgm"] {
		t.Fatalf("%s: jobs %v, want llmgate, vllm and dcgm", promConfFile, seen)
	}
	cfg["scrape_configs"] = keep
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// freeLoopbackPort returns a port that nothing listened on a moment ago.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

// startPrometheus starts Debian's prometheus on a free loopback port with config, its storage
// in a temporary directory, and waits until it is ready. Native histograms stay off, so it
// scrapes the classic histogram form. The process belongs to t.
func startPrometheus(t *testing.T, config []byte) *promProc {
	t.Helper()
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("Debian's prometheus is not installed (%v): run `make tools`", err)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, config, 0o600); err != nil {
		t.Fatal(err)
	}
	hc := newHTTPClient(t)
	// Another process may take the port between freeLoopbackPort and the bind: try again then.
	for attempt := 1; ; attempt++ {
		addr := fmt.Sprintf("127.0.0.1:%d", freeLoopbackPort(t))
		logPath := filepath.Join(dir, fmt.Sprintf("prometheus-%d.log", attempt))
		f, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(promBin,
			"--config.file="+cfgPath,
			"--storage.tsdb.path="+filepath.Join(dir, fmt.Sprintf("data-%d", attempt)),
			"--web.listen-address="+addr,
		)
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = f, f
		err = cmd.Start()
		closeErr := f.Close() // the child has its own descriptor
		if err != nil {
			t.Fatalf("start %s: %v", promBin, err)
		}
		p := &proc{name: "prometheus", cmd: cmd, logPath: logPath, watched: true}
		own(t, p)
		if closeErr != nil {
			t.Fatal(closeErr)
		}
		pp := &promProc{proc: p, url: "http://" + addr}
		ctx, cancel := context.WithTimeout(t.Context(), promTimeout)
		ready := poll(promTimeout, func() bool {
			if p.exited() {
				return true
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, pp.url+"/-/ready", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := hc.Do(req)
			if err != nil {
				return false // not listening yet
			}
			_ = resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
		cancel()
		switch {
		case p.exited() && strings.Contains(p.logs(), "address already in use") && attempt < 3:
			continue
		case p.exited():
			t.Fatalf("prometheus exited before it was ready:\n%s", tail(p.logs(), 4000))
		case !ready:
			t.Fatalf("prometheus not ready within %s:\n%s", promTimeout, tail(p.logs(), 4000))
		}
		return pp
	}
}

// promSample is one element of an instant vector.
type promSample struct {
	labels map[string]string
	value  float64
}

// query evaluates expr now through Prometheus' HTTP API. It returns an error for a query
// Prometheus rejects and for a result that is not an instant vector.
func (pp *promProc) query(t *testing.T, hc *http.Client, expr string) ([]promSample, error) {
	t.Helper()
	resp, b := do(t, hc, http.MethodGet, pp.url+"/api/v1/query?query="+url.QueryEscape(expr), "", nil)
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("query %s: %d %w: %s", expr, resp.StatusCode, err, b)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: %d %s", expr, resp.StatusCode, r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: result type %s, want vector", expr, r.Data.ResultType)
	}
	out := make([]promSample, 0, len(r.Data.Result))
	for _, s := range r.Data.Result {
		str, _ := s.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v: %w", expr, s.Value, err)
		}
		out = append(out, promSample{labels: s.Metric, value: v})
	}
	return out, nil
}

// expectSamples checks that the query returns at least one sample and that every sample is
// accepted by ok, describing the values otherwise.
func (pp *promProc) expectSamples(t *testing.T, hc *http.Client, what, expr string, ok func(promSample) bool) error {
	t.Helper()
	samples, err := pp.query(t, hc, expr)
	if err != nil {
		return err
	}
	if len(samples) == 0 {
		return fmt.Errorf("%s: %s returned nothing", what, expr)
	}
	for _, s := range samples {
		if math.IsNaN(s.value) || !ok(s) {
			return fmt.Errorf("%s: %s returned %v %v", what, expr, s.labels, s.value)
		}
	}
	return nil
}

// TestPrometheus runs Debian's Prometheus 2.42 against a real llmgate and llmsim with the
// project's own prometheus.yml (targets and intervals changed) and alerts.yml, sends traffic,
// and evaluates the dashboard's TTFT p95, token-rate and error-ratio queries: each must give
// a plausible answer. The availability recording rule must evaluate and count the stream that
// failed after its 200 as bad, vLLM's series must carry the backend label that the relabelling
// gives them, and every dashboard query must be one that Prometheus 2.42 accepts.
func TestPrometheus(t *testing.T) {
	t.Parallel()
	gw := startSharedGateway(t, "")
	prom := startPrometheus(t, promConfig(t, gw.admin, suite.sim.url))
	hc := newHTTPClient(t)
	d := loadDashboard(t)

	// Traffic must come after Prometheus has scraped the gateway once; a rate needs two samples.
	var last error
	if !poll(promTimeout, func() bool {
		last = prom.expectSamples(t, hc, "targets up", `up{job=~"llmgate|vllm"}`, func(s promSample) bool { return s.value == 1 })
		if last == nil {
			if samples, err := prom.query(t, hc, `up`); err != nil || len(samples) != 2 {
				last = fmt.Errorf("up = %v (%w), want the llmgate and vllm targets", samples, err)
			}
		}
		return last == nil
	}) {
		t.Fatalf("prometheus did not scrape both targets within %s: %v\n%s", promTimeout, last, tail(prom.logs(), 4000))
	}

	checks := []struct {
		what string
		expr string
		ok   func(promSample) bool
	}{
		{"dashboard TTFT p95", d.panelExpr(t, "Time to first token (TTFT)", "B"),
			func(s promSample) bool { return s.value > 0 && s.value < 10 }},
		{"dashboard token rate", d.panelExpr(t, "Tokens per second", "A"),
			func(s promSample) bool { return s.value > 0 }},
		{"dashboard error ratio", d.panelExpr(t, "Error ratio", "A"),
			func(s promSample) bool { return s.value > 0 && s.value < 1 }},
		{"availability recording rule", "llmgate:availability_errors:ratio_rate5m",
			func(s promSample) bool { return s.value > 0 && s.value < 1 }},
		// The traffic's stream that fails after its 200 is bad by its outcome: the rule's ratio
		// is above what counting 5xx codes alone gives (there are no 499s, so the denominators
		// are the same). Both sides are evaluated at the same instant, so the rule's expression
		// is used rather than the series it records a moment earlier.
		{"availability rule counts failures after a 200", "(" + loadRules(t).expr(t, "llmgate:availability_errors:ratio_rate5m") + `)
			> sum(rate(llmgate_requests_total{code=~"5.."}[5m])) / sum(rate(llmgate_requests_total[5m]))`,
			func(s promSample) bool { return s.value > 0 && s.value < 1 }},
		{"vLLM series relabelled to backend sim", d.panelExpr(t, "vLLM running and waiting requests", "A"),
			func(s promSample) bool { return s.labels["backend"] == "sim" }},
	}
	tick := time.NewTicker(promPollInterval)
	defer tick.Stop()
	deadline := time.Now().Add(promTimeout)
	for {
		sendMonitoringTraffic(t, hc, gw)
		last = nil
		for _, c := range checks {
			if err := prom.expectSamples(t, hc, c.what, c.expr, c.ok); err != nil {
				last = err
				break
			}
		}
		if last == nil {
			for _, c := range checks {
				samples, _ := prom.query(t, hc, c.expr)
				t.Logf("%s = %v", c.what, samples)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no plausible answer within %s: %v", promTimeout, last)
		}
		<-tick.C
	}
	tokens, err := prom.query(t, hc, d.panelExpr(t, "Tokens per second", "A"))
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]bool{}
	for _, s := range tokens {
		types[s.labels["type"]] = s.value > 0
	}
	if !types["input"] || !types["output"] {
		t.Errorf("token rate by type = %v, want input and output above 0", tokens)
	}

	// Every query of the dashboard is one Prometheus 2.42 evaluates (some have no data here:
	// DCGM, cost).
	var errs []error
	for _, p := range d.panels() {
		for _, tg := range p.Targets {
			if _, err := prom.query(t, hc, grafanaVars.Replace(tg.Expr)); err != nil {
				errs = append(errs, fmt.Errorf("panel %q target %s: %w", p.Title, tg.RefID, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Errorf("prometheus rejected dashboard queries:\n%v", err)
	}
}
