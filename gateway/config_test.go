package gateway

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfigDefaults(t *testing.T) {
	t.Parallel()
	c, err := ParseConfig([]byte("backends:\n  - name: a\n    url: http://127.0.0.1:8000/v1/\n"))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen", c.Listen, "127.0.0.1:8080"},
		{"admin_listen", c.AdminListen, "127.0.0.1:8081"},
		{"max_body_bytes", c.MaxBodyBytes, int64(32 << 20)},
		{"shutdown_grace", c.ShutdownGrace.D(), 30 * time.Second},
		{"chunk_timeout", c.Upstream.ChunkTimeout.D(), 60 * time.Second},
		{"first_byte_timeout", c.Upstream.FirstByteTimeout.D(), 5 * time.Minute},
		{"backends[0].kind", c.Backends[0].Kind, "vllm"},
		{"backends[0].url without /v1", c.Backends[0].URL, "http://127.0.0.1:8000"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestParseConfigListsEveryProblem(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		yaml string
		want []string
	}{
		{"empty", "", []string{"backends: at least one backend is required"}},
		{"unknown keys everywhere", `
bogus: 1
upstream: {chunk_timeout: "1s", nope: 2}
backends:
  - {name: a, url: "http://x:1", extra: true}
models:
  - {name: m, backends: [a], wat: 1}
`, []string{"bogus: unknown key", "upstream.nope: unknown key", "backends[0].extra: unknown key", "models[0].wat: unknown key"}},
		{"bad values", `
listen: "nohostport"
shutdown_grace: "-1s"
backends:
  - {name: a, url: "ftp://x", kind: foo, api_key_env: LLMGATE_SURELY_UNSET_VAR}
  - {name: a, url: "http://y:1"}
models:
  - {name: m, backends: [a, ghost], downgrade_to: m, tokenizer: gpt2, max_tokens_cap: -1}
  - {name: m, backends: []}
telemetry: {log_level: loud}
`, []string{
			`listen: must be host:port`, `shutdown_grace: must be > 0`, `backends[0].url: must be an http(s) base URL`,
			`backends[0].kind: must be vllm`, `backends[0].api_key_env: environment variable LLMGATE_SURELY_UNSET_VAR is not set`,
			`backends[1].name: "a" is used twice`, `models[0].backends[1]: no backend is named "ghost"`,
			`models[0].downgrade_to: must name another configured model`, `models[0].tokenizer: must be cl100k_base or o200k_base`,
			`models[0].max_tokens_cap: must be >= 0`, `models[1].name: "m" is used twice`, `models[1].backends: at least one backend`,
			`telemetry.log_level: must be debug`,
		}},
		{"bad durations", "shutdown_grace: 5\nupstream: {chunk_timeout: soon}\nbackends: [{name: a, url: \"http://x:1\"}]\n",
			[]string{"shutdown_grace: must be a duration", "upstream.chunk_timeout: must be a duration"}},
		{"bad type and unknown key", "max_body_bytes: big\nzz: 1\nbackends: [{name: a, url: \"http://x:1\"}]\n",
			[]string{"zz: unknown key", `max_body_bytes: must be an integer, got "big"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseConfig([]byte(c.yaml))
			if err == nil {
				t.Fatalf("ParseConfig(%q) = nil error, want %d problems", c.yaml, len(c.want))
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParseConfig error does not mention %q; got:\n%v", w, err)
				}
			}
		})
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	t.Parallel()
	if _, err := LoadConfig(filepath.Join("..", "configs", "llmgate.yaml")); err != nil {
		t.Errorf("configs/llmgate.yaml: %v", err)
	}
}

func TestMainCheckAndVersion(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(good, []byte("backends: [{name: a, url: \"http://127.0.0.1:1\"}]\n"), 0o600)
	_ = os.WriteFile(bad, []byte("zzz: 1\nbackends: [{name: a, url: \"nope\"}]\n"), 0o600)
	cases := []struct {
		name    string
		args    []string
		wantErr error
		wantOut []string
	}{
		{"version", []string{"-version"}, nil, []string{"llmgate "}},
		{"check good", []string{"-check", "-config", good}, nil, []string{"config OK"}},
		{"check bad", []string{"-check", "-config", bad}, ErrInvalidConfig, []string{"zzz: unknown key", "backends[0].url"}},
		{"check backend flag", []string{"-check", "-backend", "http://127.0.0.1:9"}, nil, []string{"config OK"}},
		{"both", []string{"-check", "-config", good, "-backend", "http://x:1"}, ErrInvalidConfig, []string{"not both"}},
		{"nothing", []string{"-check"}, ErrInvalidConfig, []string{"no backends"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			err := Main(t.Context(), c.args, &out)
			if (c.wantErr == nil) != (err == nil) || (c.wantErr != nil && !errors.Is(err, c.wantErr)) {
				t.Fatalf("Main(%q) = %v, want %v", c.args, err, c.wantErr)
			}
			for _, w := range c.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("Main(%q) output %q does not mention %q", c.args, out.String(), w)
				}
			}
		})
	}
}
