package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// The monitoring files, relative to this package's directory (go test runs tests there).
const (
	dashboardFile = "../configs/grafana/llmgate.json"
	alertsFile    = "../configs/alerts.yml"
	promConfFile  = "../configs/prometheus.yml"
	runbooksFile  = "../docs/runbooks.md"
)

// dcgmFields are the DCGM exporter's fields that the monitoring files may use; docs/monitoring.md
// lists them as what the DCGM exporter must export.
var dcgmFields = []string{"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE"}

// grafanaVars replaces the dashboard's variables with what the tests evaluate: every model,
// every backend, and a rate window that holds several 1 s scrapes.
var grafanaVars = strings.NewReplacer(
	"${__rate_interval}", "1m", "$__rate_interval", "1m",
	"${__interval}", "1m", "$__interval", "1m",
	"${model}", ".*", "$model", ".*",
	"${backend}", ".*", "$backend", ".*",
	"${datasource}", "prometheus", "$datasource", "prometheus",
)

// leftoverVar finds a Grafana variable that grafanaVars did not replace.
var leftoverVar = regexp.MustCompile(`\$\{?[A-Za-z_]`)

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Query      any    `json:"query"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
	Panels []dashPanel `json:"panels"`
}

type dashPanel struct {
	Title      string `json:"title"`
	Type       string `json:"type"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"` // a collapsed row's panels
}

// loadDashboard reads the dashboard.
func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// panels returns every panel of d, those inside collapsed rows included.
func (d dashboard) panels() []dashPanel {
	var out []dashPanel
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// panelExpr returns the expression of target refID of the panel titled title, with the
// variables substituted.
func (d dashboard) panelExpr(t *testing.T, title, refID string) string {
	t.Helper()
	for _, p := range d.panels() {
		if p.Title != title {
			continue
		}
		for _, tg := range p.Targets {
			if tg.RefID == refID {
				return grafanaVars.Replace(tg.Expr)
			}
		}
	}
	t.Fatalf("%s has no panel %q with a target %s", dashboardFile, title, refID)
	return ""
}

// ruleFile is the part of a Prometheus rule file the tests read.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func loadRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	return rf
}

// expr returns the expression of the recording rule or alert named name.
func (rf ruleFile) expr(t *testing.T, name string) string {
	t.Helper()
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record == name || r.Alert == name {
				return r.Expr
			}
		}
	}
	t.Fatalf("%s has no rule %s", alertsFile, name)
	return ""
}

// promExpr is one PromQL expression of the monitoring files and where it comes from.
type promExpr struct {
	where, expr string
}

// monitoringExprs returns every PromQL expression of the dashboard (targets and the metric of
// label_values variable queries, variables substituted) and of the rule file, and the names of
// the recording rules.
func monitoringExprs(t *testing.T) (exprs []promExpr, recorded map[string]bool) {
	t.Helper()
	d := loadDashboard(t)
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*[A-Za-z_][A-Za-z0-9_]*\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(strings.TrimSpace(v.Definition))
		if m == nil {
			t.Errorf("%s: variable %s: query %q is not label_values(METRIC, LABEL)", dashboardFile, v.Name, v.Definition)
			continue
		}
		exprs = append(exprs, promExpr{fmt.Sprintf("%s variable %s", dashboardFile, v.Name), m[1]})
	}
	for _, p := range d.panels() {
		for _, tg := range p.Targets {
			where := fmt.Sprintf("%s panel %q target %s", dashboardFile, p.Title, tg.RefID)
			e := grafanaVars.Replace(tg.Expr)
			if leftoverVar.MatchString(e) {
				t.Errorf("%s: unknown Grafana variable left in %q", where, e)
			}
			exprs = append(exprs, promExpr{where, e})
		}
	}
	recorded = map[string]bool{}
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			name := r.Alert
			if r.Record != "" {
				name = r.Record
				recorded[r.Record] = true
			}
			exprs = append(exprs, promExpr{fmt.Sprintf("%s group %s rule %s", alertsFile, g.Name, name), r.Expr})
		}
	}
	return exprs, recorded
}

// metricNames parses expr with Prometheus' parser and returns the metric names it selects.
func metricNames(expr string) ([]string, error) {
	ast, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	var unnamed error
	parser.Inspect(ast, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			unnamed = fmt.Errorf("selector %s names no metric", vs)
		}
		names = append(names, name)
		return nil
	})
	return names, unnamed
}

// TestMonitoringDashboard checks that the dashboard imports into Grafana as the docs say: a
// uid, a title, a schema version, the datasource, model and backend variables, panels that
// all query the chosen datasource with PromQL that parses, and range selectors that use
// $__rate_interval.
func TestMonitoringDashboard(t *testing.T) {
	t.Parallel()
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 {
		t.Errorf("%s: uid %q, title %q, schemaVersion %d; want all set", dashboardFile, d.UID, d.Title, d.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	for name, typ := range map[string]string{"datasource": "datasource", "model": "query", "backend": "query"} {
		if vars[name] != typ {
			t.Errorf("%s: variable %s has type %q, want %q", dashboardFile, name, vars[name], typ)
		}
	}
	fixedRange := regexp.MustCompile(`\[[0-9]+[smhdwy]\]`)
	titles := map[string]bool{}
	n := 0
	for _, p := range d.panels() {
		if p.Type == "row" {
			continue
		}
		if titles[p.Title] {
			t.Errorf("%s: two panels are titled %q", dashboardFile, p.Title)
		}
		titles[p.Title] = true
		if len(p.Targets) == 0 {
			t.Errorf("%s: panel %q has no targets", dashboardFile, p.Title)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("%s: panel %q does not query the ${datasource} variable", dashboardFile, p.Title)
		}
		for _, tg := range p.Targets {
			n++
			if fixedRange.MatchString(tg.Expr) {
				t.Errorf("%s: panel %q target %s has a fixed range, want [$__rate_interval]: %s", dashboardFile, p.Title, tg.RefID, tg.Expr)
			}
			if _, err := metricNames(grafanaVars.Replace(tg.Expr)); err != nil {
				t.Errorf("%s: panel %q target %s: %v\n%s", dashboardFile, p.Title, tg.RefID, err, tg.Expr)
			}
		}
	}
	if n == 0 {
		t.Errorf("%s has no queries", dashboardFile)
	}
}

// TestMonitoringAlerts checks what promtool does not: every alert carries a severity that the
// Alertmanager routing of docs/monitoring.md knows (page or ticket), a summary, a description
// and a runbook_url that points at a section of docs/runbooks.md.
func TestMonitoringAlerts(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(runbooksFile)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for line := range strings.Lines(string(b)) {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			anchors[githubAnchor(h)] = true
		}
	}
	const runbookPrefix = "https://github.com/llmgate/llmgate/blob/main/docs/runbooks.md#"
	alerts := 0
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			if s := r.Labels["severity"]; s != "page" && s != "ticket" {
				t.Errorf("%s: alert %s has severity %q, want page or ticket", alertsFile, r.Alert, s)
			}
			for _, key := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[key] == "" {
					t.Errorf("%s: alert %s has no %s annotation", alertsFile, r.Alert, key)
				}
			}
			anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], runbookPrefix)
			if !ok || !anchors[anchor] {
				t.Errorf("%s: alert %s: runbook_url %q is not %s<a section of %s>", alertsFile, r.Alert,
					r.Annotations["runbook_url"], runbookPrefix, runbooksFile)
			}
		}
	}
	if alerts == 0 {
		t.Errorf("%s has no alerts", alertsFile)
	}
}

// githubAnchor returns the anchor GitHub gives a Markdown heading: lower case, spaces to
// hyphens, punctuation dropped.
func githubAnchor(heading string) string {
	var sb strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			sb.WriteByte('-')
		case r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('0' <= r && r <= '9'):
			sb.WriteRune(r)
		}
	}
	return sb.String()
}

// monitoringGatewayConfig is a gateway in front of simURL serving both shared models, each
// with a price, which llmgate_cost_usd_total needs.
func monitoringGatewayConfig(simURL string) string {
	return gatewayConfigWith(simURL, "    price: {input_per_million: 1.0, output_per_million: 2.0}\n", "")
}

// sendMonitoringTraffic makes requests through gw that create every series the monitoring
// files read: a streamed chat (TTFT, inter-token, generation), non-streamed chat, completions
// and embeddings, an unknown model (404), an upstream failure (500) and a stream that fails
// after its 200 (an in-band error event: code 200, outcome upstream_error). It returns how many
// requests it made.
func sendMonitoringTraffic(t *testing.T, hc *http.Client, gw *gwProc) int {
	t.Helper()
	reqs := []struct {
		route, body string
		hdr         http.Header
		want        int
	}{
		{"/v1/chat/completions", `{"model":"sim-model","stream":true,"max_tokens":8,"messages":[{"role":"user","content":"stream a few tokens"}]}`, nil, 200},
		{"/v1/chat/completions", `{"model":"sim-model","max_tokens":4,"messages":[{"role":"user","content":"answer whole"}]}`, nil, 200},
		{"/v1/completions", `{"model":"sim-small","max_tokens":3,"prompt":"complete this"}`, nil, 200},
		{"/v1/embeddings", `{"model":"sim-model","input":"embed me"}`, nil, 200},
		{"/v1/chat/completions", `{"model":"no-such-model","messages":[{"role":"user","content":"hi"}]}`, nil, 404},
		{"/v1/chat/completions", `{"model":"sim-model","max_tokens":2,"messages":[{"role":"user","content":"fail"}]}`, headers("X-Sim-Fail", "500"), 500},
		{"/v1/chat/completions", `{"model":"sim-model","stream":true,"max_tokens":4,"messages":[{"role":"user","content":"fail mid-stream"}]}`, headers("X-Sim-Fail", "error-event-after=1"), 200},
	}
	for _, r := range reqs {
		hdr := headers("X-Request-Id", newRequestID(t))
		for k, v := range r.hdr {
			hdr[k] = v
		}
		resp, b := do(t, hc, http.MethodPost, gw.url+r.route, r.body, hdr)
		if resp.StatusCode != r.want {
			t.Fatalf("POST %s %s = %d, want %d:\n%s", r.route, r.body, resp.StatusCode, r.want, b)
		}
	}
	return len(reqs)
}

// exposedNames returns the series names a Prometheus scrape of fams stores: a counter or gauge
// by its name, a classic histogram as NAME_bucket, NAME_sum and NAME_count, a summary as NAME,
// NAME_sum and NAME_count.
func exposedNames(fams map[string]*dto.MetricFamily) map[string]bool {
	names := map[string]bool{}
	for name, f := range fams {
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[name], names[name+"_sum"], names[name+"_count"] = true, true, true
		default:
			names[name] = true
		}
	}
	return names
}

// TestMonitoringMetricNames parses every PromQL expression of the dashboard and the rule file
// and checks that each metric it names exists: llmgate_ names in a real llmgate's /metrics,
// vllm: names in llmsim's, llmgate: names as recording rules, DCGM names among the fields
// docs/monitoring.md asks the DCGM exporter for. The gateway first serves traffic that makes
// every series appear.
func TestMonitoringMetricNames(t *testing.T) {
	t.Parallel()
	exprs, recorded := monitoringExprs(t)
	gw := startGatewayConfig(t, monitoringGatewayConfig(suite.sim.url), nil)
	hc := newHTTPClient(t)
	n := sendMonitoringTraffic(t, hc, gw)

	// The last request's metrics are recorded just after its response.
	gwNames := map[string]bool{}
	if !poll(settleTimeout, func() bool {
		fams := scrape(t, gw.admin+"/metrics")
		gwNames = exposedNames(fams)
		got, _ := metricValue(fams, "llmgate_requests_total", map[string]string{})
		return got == float64(n)
	}) {
		t.Fatalf("llmgate_requests_total did not reach %d", n)
	}
	simNames := exposedNames(scrape(t, suite.sim.url+"/metrics"))

	used := 0
	for _, e := range exprs {
		names, err := metricNames(e.expr)
		if err != nil {
			t.Errorf("%s: %v\n%s", e.where, err, e.expr)
			continue
		}
		for _, name := range names {
			used++
			var ok bool
			var exposer string
			switch {
			case strings.HasPrefix(name, "llmgate_"):
				ok, exposer = gwNames[name], "llmgate's /metrics"
			case strings.HasPrefix(name, "vllm:"):
				ok, exposer = simNames[name], "llmsim's /metrics"
			case strings.HasPrefix(name, "llmgate:"):
				ok, exposer = recorded[name], "the recording rules of "+alertsFile
			case strings.HasPrefix(name, "DCGM_"):
				ok, exposer = slices.Contains(dcgmFields, name), fmt.Sprintf("the DCGM fields %v", dcgmFields)
			default:
				ok, exposer = name == "up", "Prometheus' own series (up)"
			}
			if !ok {
				t.Errorf("%s uses %s, which is not in %s", e.where, name, exposer)
			}
		}
	}
	if used == 0 {
		t.Errorf("no metric names found in %d expressions", len(exprs))
	}
	if t.Failed() {
		t.Logf("llmgate exposes: %v", sortedKeys(gwNames))
		t.Logf("llmsim exposes: %v", sortedKeys(simNames))
	}
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
