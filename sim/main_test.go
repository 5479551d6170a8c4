package sim

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// stderrBuffer collects Main's stderr and hands over the URL of its "listening on" line.
type stderrBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	sent bool
	url  chan string // receives the URL once
}

func newStderrBuffer() *stderrBuffer { return &stderrBuffer{url: make(chan string, 1)} }

// Write collects p and looks for the listening line among the complete lines.
func (b *stderrBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if !b.sent {
		lines := strings.Split(b.buf.String(), "\n")
		for _, line := range lines[:len(lines)-1] {
			if u, ok := strings.CutPrefix(line, "llmsim: listening on "); ok {
				b.sent = true
				b.url <- u
				break
			}
		}
	}
	return len(p), nil
}

// String returns everything written so far.
func (b *stderrBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startMain runs Main with args on a loopback port and returns its URL and its result.
func startMain(ctx context.Context, t *testing.T, args ...string) (string, <-chan error, *stderrBuffer) {
	t.Helper()
	stderr := newStderrBuffer()
	done := make(chan error, 1)
	go func() { done <- Main(ctx, append([]string{"-listen", "127.0.0.1:0"}, args...), stderr) }()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case u := <-stderr.url:
		return u, done, stderr
	case err := <-done:
		t.Fatalf("Main(%q) = %v before listening; stderr:\n%s", args, err, stderr)
	case <-timer.C:
		t.Fatalf("Main(%q) did not report its address; stderr:\n%s", args, stderr)
	}
	return "", nil, nil
}

// waitMain waits for Main's result.
func waitMain(t *testing.T, done <-chan error) error {
	t.Helper()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		t.Fatalf("Main did not return after its context ended")
		return nil
	}
}

func TestMainServes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	url, done, stderr := startMain(ctx, t, "-ttft", "1ms", "-itl", "1ms", "-model", "a", "-model", "b")
	if !strings.HasPrefix(url, "http://127.0.0.1:") || strings.HasSuffix(url, ":0") {
		t.Errorf("listening URL = %q, want http://127.0.0.1:PORT with the real port", url)
	}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Post(url+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"b","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatalf("POST to Main's server: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"model":"b"`) {
		t.Errorf("POST to Main's server = %d %s, want 200 from model b", resp.StatusCode, body)
	}
	client.CloseIdleConnections()
	cancel()
	if err := waitMain(t, done); err != nil {
		t.Errorf("Main after cancel = %v, want nil", err)
	}
	if n := strings.Count(stderr.String(), "listening on"); n != 1 {
		t.Errorf("stderr has %d listening lines, want 1:\n%s", n, stderr)
	}
}

func TestMainCutsInFlightAfterGrace(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	url, done, _ := startMain(ctx, t, "-shutdown-grace", "50ms", "-log-level", "error")
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/v1/completions",
		strings.NewReader(`{"prompt":"hi","stream":true}`))
	if err != nil {
		t.Fatalf("NewRequest: %v", err)
	}
	req.Header.Set("X-Sim-TTFT", "1h")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST streaming request: %v", err)
	}
	defer resp.Body.Close()
	start := time.Now()
	cancel()
	if err := waitMain(t, done); err != nil {
		t.Errorf("Main after cancel = %v, want nil", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("Main returned %v after cancel, want after the 50ms grace", d)
	}
	events, err := readEvents(resp.Body)
	if err == nil || slices.Contains(events, "[DONE]") {
		t.Errorf("in-flight stream ended with events %q, error %v; want it cut without [DONE]", events, err)
	}
}

func TestMainHelp(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	err := Main(t.Context(), []string{"-help"}, &stderr)
	if !errors.Is(err, flag.ErrHelp) {
		t.Errorf("Main(-help) = %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"Usage: llmsim", "Capacity model", "itl * (1 + (running - 1) / max-num-seqs)",
		"X-Sim-Fail: disconnect-after=N", "-max-num-seqs", "-kv-tokens", "-api-key"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("Main(-help) output lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestMainBadArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"-bogus"}, "bogus"},
		{"bad duration", []string{"-ttft", "soon"}, "-ttft"},
		{"zero seqs", []string{"-max-num-seqs", "0"}, "-max-num-seqs: must be >= 1, got 0"},
		{"error rate above 1", []string{"-error-rate", "1.5"}, "-error-rate: must be between 0 and 1, got 1.5"},
		{"negative itl", []string{"-itl", "-1ms"}, "-itl: must be >= 0, got -1ms"},
		{"empty model", []string{"-model", ""}, "model name is empty"},
		{"duplicate model", []string{"-model", "a", "-model", "a"}, `-model: "a" given twice`},
		{"bad log level", []string{"-log-level", "loud"}, "-log-level"},
		{"extra argument", []string{"serve"}, `unexpected argument "serve"`},
		{"bad listen address", []string{"-listen", "not-an-address"}, "listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			err := Main(t.Context(), tt.args, &stderr)
			if err == nil || errors.Is(err, flag.ErrHelp) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Main(%q) = %v, want an error containing %q", tt.args, err, tt.want)
			}
			if strings.Contains(stderr.String(), "listening on") {
				t.Errorf("Main(%q) reported listening despite the error", tt.args)
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		edit func(*Config)
	}{
		{name: "defaults", edit: func(*Config) {}},
		{name: "everything", args: []string{"-listen", "0.0.0.0:9", "-model", "x", "-model", "y", "-ttft", "1s",
			"-itl", "2ms", "-max-num-seqs", "3", "-error-rate", "0.25", "-max-tokens", "7", "-kv-tokens", "99",
			"-embedding-dim", "5", "-api-key", "k", "-seed", "42", "-log-level", "debug", "-shutdown-grace", "0s"},
			edit: func(c *Config) {
				*c = Config{Listen: "0.0.0.0:9", Models: []string{"x", "y"}, TTFT: time.Second, ITL: 2 * time.Millisecond,
					MaxNumSeqs: 3, ErrorRate: 0.25, MaxTokens: 7, KVTokens: 99, EmbeddingDim: 5, APIKey: "k", Seed: 42,
					LogLevel: slog.LevelDebug}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := DefaultConfig()
			tt.edit(&want)
			got, err := parseFlags(tt.args, io.Discard)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("parseFlags(%q) = %+v, %v; want %+v", tt.args, got, err, want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	bad := Config{Models: []string{"a", " "}, TTFT: -1, MaxNumSeqs: 0, ErrorRate: -0.1, KVTokens: 0,
		EmbeddingDim: 0, MaxTokens: 0, ShutdownGrace: -1}
	err := bad.Validate()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Validate(%+v) = %v, want ErrInvalidConfig", bad, err)
	}
	for _, want := range []string{"-model: name 2 is empty", "-ttft:", "-max-num-seqs:", "-error-rate:", "-kv-tokens:",
		"-embedding-dim:", "-max-tokens:", "-shutdown-grace:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate(%+v) = %q, want it to list %q", bad, err, want)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig().Validate() = %v, want nil", err)
	}
	if _, err := New(Config{}, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New(Config{}) error = %v, want ErrInvalidConfig", err)
	}
}
