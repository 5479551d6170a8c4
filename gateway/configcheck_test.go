package gateway

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// problems splits a joined config error into its messages, sorted.
func problems(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

const okBackend = "backends: [{name: a, url: \"http://x:1\"}]\n"

// TestParseConfigExactProblems: every problem of a bad config is listed once, with its YAML
// path, type errors included, and validation still runs when decoding hit a type error.
func TestParseConfigExactProblems(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		yaml string
		want []string
	}{
		{"string size and bad duration", "max_body_bytes: x\nshutdown_grace: abc\n" + okBackend, []string{
			`max_body_bytes: must be an integer, got "x"`,
			`shutdown_grace: must be a duration such as "30s", got "abc"`,
		}},
		{"leaf durations and prices", "telemetry: {tracing: {timeout: abc, protocol: smoke}}\n" +
			"max_response_bytes: x\nmodels: [{name: m, backends: [a], price: {input_per_million: -1, output_per_million: cheap}}]\n" + okBackend, []string{
			`max_response_bytes: must be an integer, got "x"`,
			`models[0].price.output_per_million: must be a number, got "cheap"`,
			`models[0].price: prices must be finite and >= 0, got -1 and 0`,
			`telemetry.tracing.protocol: must be grpc or http/protobuf, got "smoke"`,
			`telemetry.tracing.timeout: must be a duration such as "30s", got "abc"`,
		}},
		{"infinite price and oversized audit content", "models: [{name: m, backends: [a], price: {input_per_million: .inf}}]\n" +
			"telemetry: {audit: {max_content_bytes: 1000000000}}\n" + okBackend, []string{
			`models[0].price: prices must be finite and >= 0, got +Inf and 0`,
			`telemetry.audit.max_content_bytes: must be > 0 (0 means 65536) and at most 4194304, got 1000000000`,
		}},
		{"negative size and bad duration", "max_body_bytes: -5\nshutdown_grace: abc\n" + okBackend, []string{
			`max_body_bytes: must be > 0, got -5`,
			`shutdown_grace: must be a duration such as "30s", got "abc"`,
		}},
		{"type errors of every kind beside validation problems", `
listen: [a]
upstream: 5
max_body_bytes: 1.5
body_memory_bytes: 18446744073709551615
shutdown_delay: 3
backends:
  - name: a
    url: "http://x:1"
    max_concurrency: 2.5
    kind: {a: 1}
  - name: a
    url: "ftp://y"
models:
  - name: m
    backends: a
  - {name: m2, backends: [a, [x]], max_tokens_cap: true, tokenizer: gpt2}
telemetry: {log_level: loud, log_format: [json]}
bogus: 1
`, []string{
			`backends[0].kind: must be a string, got a map`,
			`backends[0].max_concurrency: must be an integer, got 2.5`,
			`backends[1].name: "a" is used twice`,
			`backends[1].url: must be an http(s) base URL such as http://127.0.0.1:8000, got "ftp://y"`,
			`body_memory_bytes: must be an integer that fits in 64 bits, got 18446744073709551615`,
			`bogus: unknown key`,
			`listen: must be a string, got a list`,
			`max_body_bytes: must be an integer, got 1.5`,
			`models[0].backends: must be a list, got "a"`,
			`models[1].backends[1]: must be a string, got a list`,
			`models[1].max_tokens_cap: must be an integer, got true`,
			`models[1].tokenizer: must be cl100k_base or o200k_base, got "gpt2"`,
			`shutdown_delay: must be a duration such as "30s", got 3`,
			`telemetry.log_format: must be a string, got a list`,
			`telemetry.log_level: must be debug, info, warn or error, got "loud"`,
			`upstream: must be a map, got 5`,
		}},
		{"intake keys", `
body_read_timeout: "-1s"
body_memory_bytes: -1
trusted_proxies: ["10.0.0.0/8", "bad", "::1", "300.1.1.1/8", 5, "192.168.0.7", "fe80::/10", ""]
` + okBackend, []string{
			`body_memory_bytes: must be > 0, got -1`,
			`body_read_timeout: must be > 0, got -1s`,
			`trusted_proxies[1]: must be an IP address or a CIDR such as 10.0.0.0/8, got "bad"`,
			`trusted_proxies[3]: must be an IP address or a CIDR such as 10.0.0.0/8, got "300.1.1.1/8"`,
			`trusted_proxies[4]: must be an IP address or a CIDR such as 10.0.0.0/8, got "5"`,
			`trusted_proxies[7]: must be an IP address or a CIDR such as 10.0.0.0/8, got ""`,
		}},
		{"memory budget below the body limit", "max_body_bytes: 2000\nbody_memory_bytes: 1000\n" + okBackend, []string{
			`body_memory_bytes: must be >= max_body_bytes (2000), got 1000`,
		}},
		{"trusted_proxies not a list", "trusted_proxies: 10.0.0.0/8\n" + okBackend, []string{
			`trusted_proxies: must be a list, got "10.0.0.0/8"`,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseConfig([]byte(c.yaml))
			got := problems(err)
			want := slices.Sorted(slices.Values(c.want))
			if !slices.Equal(got, want) {
				t.Errorf("ParseConfig(%q) problems:\n got %q\nwant %q", c.yaml, got, want)
			}
		})
	}
}

// TestParseConfigIntakeKeys: the new keys parse and default.
func TestParseConfigIntakeKeys(t *testing.T) {
	t.Parallel()
	c, err := ParseConfig([]byte(okBackend))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	if c.BodyReadTimeout.D().String() != "30s" || c.BodyMemoryBytes != 256<<20 || len(c.TrustedProxies) != 0 {
		t.Errorf("defaults: body_read_timeout %s, body_memory_bytes %d, trusted_proxies %q; want 30s, %d, none",
			c.BodyReadTimeout.D(), c.BodyMemoryBytes, c.TrustedProxies, 256<<20)
	}
	c, err = ParseConfig([]byte("body_read_timeout: 5s\nbody_memory_bytes: 67108864\ntrusted_proxies: [10.0.0.0/8, \"::1\"]\n" + okBackend))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	if c.BodyReadTimeout.D().String() != "5s" || c.BodyMemoryBytes != 64<<20 || !slices.Equal(c.TrustedProxies, []string{"10.0.0.0/8", "::1"}) {
		t.Errorf("parsed: %s %d %q", c.BodyReadTimeout.D(), c.BodyMemoryBytes, c.TrustedProxies)
	}
}

// TestAPIKeyEnvEmpty: a key variable that is set but empty would send "Bearer " upstream.
func TestAPIKeyEnvEmpty(t *testing.T) { // not parallel: t.Setenv
	t.Setenv("LLMGATE_TEST_EMPTY_KEY", "")
	_, err := ParseConfig([]byte("backends: [{name: a, url: \"http://x:1\", api_key_env: LLMGATE_TEST_EMPTY_KEY}, " +
		"{name: b, url: \"http://x:2\", api_key_env: LLMGATE_SURELY_UNSET_VAR}]\n"))
	want := []string{
		"backends[0].api_key_env: environment variable LLMGATE_TEST_EMPTY_KEY is empty",
		"backends[1].api_key_env: environment variable LLMGATE_SURELY_UNSET_VAR is not set",
	}
	if got := problems(err); !slices.Equal(got, want) {
		t.Errorf("problems = %q, want %q", got, want)
	}
}

// kinds is a struct with a field of each kind the type walk checks.
type kinds struct {
	B bool              `yaml:"b"`
	F float64           `yaml:"f"`
	I int8              `yaml:"i"`
	U uint              `yaml:"u"`
	S string            `yaml:"s"`
	D Duration          `yaml:"d"`
	L []int             `yaml:"l"`
	M map[string]string `yaml:"m"`
	P *kinds            `yaml:"p"`
}

// TestWalkKindsByFieldType checks scalar kinds against each field type the walk knows.
func TestWalkKindsByFieldType(t *testing.T) {
	t.Parallel()
	doc := `
b: 1
f: "x"
i: 300
u: -1
s: {x: 1}
d: 10
l: [1, "two", 3.5]
m: {a: x, b: [1]}
p: {b: yes, f: 2, i: -3, u: 4, s: 5, d: 1m, l: null, m: {}}
`
	var tree any
	if err := yaml.Unmarshal([]byte(doc), &tree); err != nil {
		t.Fatal(err)
	}
	var r keyReport
	walkKeys(tree, reflect.TypeFor[kinds](), "", &r)
	var got []string
	for _, e := range append(r.unknown, r.types...) {
		got = append(got, e.Error())
	}
	slices.Sort(got)
	want := []string{
		`b: must be true or false, got 1`,
		`d: must be a duration such as "30s", got 10`,
		`f: must be a number, got "x"`,
		`i: must be an integer that fits in 8 bits, got 300`,
		`l[1]: must be an integer, got "two"`,
		`l[2]: must be an integer, got 3.5`,
		`m.b: must be a string, got a list`,
		`p.b: must be true or false, got "yes"`,
		`s: must be a string, got a map`,
		`u: must be an integer >= 0, got -1`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("walk problems:\n got %q\nwant %q", got, want)
	}
	if len(r.unknown) != 0 {
		t.Errorf("unknown keys in a map field: %v", errors.Join(r.unknown...))
	}
}
