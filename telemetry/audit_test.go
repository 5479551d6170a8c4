package telemetry

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func newTestAuditLog(t *testing.T, cfg AuditConfig) *AuditLog {
	t.Helper()
	cfg.Enabled = true
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "audit.log")
	}
	a, err := NewAuditLog(cfg.WithDefaults(), Prefixed(prometheus.NewRegistry()))
	if err != nil {
		t.Fatalf("NewAuditLog: %v", err)
	}
	return a
}

// drainAudit runs a until everything recorded is written, then closes it.
func drainAudit(t *testing.T, a *AuditLog) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := a.Run(ctx); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("Close = %v, want nil", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}

func readAuditLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open audit log: %v", err)
	}
	defer f.Close()
	var lines []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line %q is not JSON: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}

func TestAuditLogRecord(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	a := newTestAuditLog(t, AuditConfig{Path: path})
	when := time.Date(2025, 3, 15, 10, 30, 0, 123e6, time.UTC)
	prompt := "My card is 4111 1111 1111 1111 and my key sk-abcdefghijklmnopqrstuvwxyz0123 <b>&"
	completion := "Sure, I will e-mail jane@example.com from 10.1.2.3."
	a.Record(AuditEntry{Time: when, RequestID: "req-1", Route: "/v1/chat/completions",
		Model: "llama", Tenant: "team-a", Backend: "vllm-a", Status: 200,
		Prompt: prompt, Completion: completion})
	drainAudit(t, a)

	lines := readAuditLines(t, path)
	if len(lines) != 1 {
		t.Fatalf("got %d audit lines, want 1", len(lines))
	}
	want := map[string]any{
		"time": "2025-03-15T10:30:00.123Z", "request_id": "req-1", "route": "/v1/chat/completions",
		"model": "llama", "tenant": "team-a", "backend": "vllm-a", "status": 200.0,
		"prompt":           "My card is [REDACTED:card] and my key [REDACTED:key] <b>&",
		"prompt_bytes":     float64(len(prompt)),
		"completion":       "Sure, I will e-mail [REDACTED:email] from [REDACTED:ip].",
		"completion_bytes": float64(len(completion)),
	}
	for k, w := range want {
		if got := lines[0][k]; got != w {
			t.Errorf("audit line %s = %#v, want %#v", k, got, w)
		}
	}
	if len(lines[0]) != len(want) {
		t.Errorf("audit line has keys %v, want exactly %d", lines[0], len(want))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("audit log mode = %v, want 0600", perm)
	}
}

func TestAuditLogClipsBeforeRedacting(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	a := newTestAuditLog(t, AuditConfig{Path: path, MaxContentBytes: 40})
	// The card number straddles the 40-byte cut: no half of it may remain.
	prompt := "please charge the card 4111 1111 1111 1111 today"
	a.Record(AuditEntry{RequestID: "r", Prompt: prompt, Completion: strings.Repeat("ok ", 100)})
	drainAudit(t, a)
	lines := readAuditLines(t, path)
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want 1", len(lines))
	}
	if got, want := lines[0]["prompt"], "please charge the card"; got != want {
		t.Errorf("prompt = %q, want %q", got, want)
	}
	if got := lines[0]["completion"].(string); len(got) > 40 || !strings.HasPrefix(got, "ok ok") {
		t.Errorf("completion = %q, want at most 40 bytes of it", got)
	}
	if got := lines[0]["prompt_bytes"]; got != float64(len(prompt)) {
		t.Errorf("prompt_bytes = %v, want %d", got, len(prompt))
	}
	if _, err := time.Parse(time.RFC3339Nano, lines[0]["time"].(string)); err != nil {
		t.Errorf("time = %q: %v", lines[0]["time"], err)
	}
}

func TestAuditLogRotates(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	a := newTestAuditLog(t, AuditConfig{Path: path, MaxSizeMB: 1, MaxBackups: 2})
	text := strings.Repeat("word ", 12000) // ~60 KiB per field: ~120 KiB a line
	for range 20 {
		a.Record(AuditEntry{RequestID: "r", Prompt: text, Completion: text})
	}
	drainAudit(t, a)
	total := 0
	for _, p := range []string{path, path + ".1", path + ".2"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("stat %s: %v", filepath.Base(p), err)
		}
		if fi.Size() > 1<<20 {
			t.Errorf("%s is %d bytes, want at most 1 MiB", filepath.Base(p), fi.Size())
		}
		total += len(readAuditLines(t, p))
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Errorf("%s.3 exists, want at most 2 backups", filepath.Base(path))
	}
	if total == 0 || total > 20 {
		t.Errorf("%d whole lines in the kept files, want 1..20", total)
	}
}

func TestAuditLogDropsWhenFull(t *testing.T) {
	t.Parallel()
	a := newTestAuditLog(t, AuditConfig{})
	// Run is not running: the queue fills, and the rest are dropped and counted.
	for range AuditQueue + 3 {
		a.Record(AuditEntry{RequestID: "r", Prompt: "p"})
	}
	if got := testutil.ToFloat64(a.w.dropped); got != 3 {
		t.Errorf("dropped = %v, want 3", got)
	}
	drainAudit(t, a)
	a.Record(AuditEntry{RequestID: "after close"})
	if got := testutil.ToFloat64(a.w.dropped); got != 4 {
		t.Errorf("dropped after a Record past Close = %v, want 4", got)
	}
}

func TestNilAuditLog(t *testing.T) {
	t.Parallel()
	var a *AuditLog
	a.Record(AuditEntry{Prompt: "x"})
	if err := a.Run(t.Context()); err != nil {
		t.Errorf("nil Run = %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("nil Close = %v", err)
	}
}

func TestClip(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in string
		n        int
		want     string
	}{
		{"short", "hello", 10, "hello"},
		{"at a space", "hello world", 5, "hello"},
		{"mid word", "hello world", 8, "hello"},
		{"mid rune", "héllo", 2, "h"},
		{"no space", strings.Repeat("x", 300), 10, strings.Repeat("x", 10)},
		{"trailing number words", "call 06 12 34 56 78 now", 14, "call"},
		{"mid email", "mail jane@example.com now", 12, "mail"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := clip(c.in, c.n); got != c.want {
				t.Errorf("clip(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
			}
		})
	}
}

func BenchmarkAuditRecord(b *testing.B) {
	cfg := AuditConfig{Enabled: true, Path: filepath.Join(b.TempDir(), "audit.log")}.WithDefaults()
	a, err := NewAuditLog(cfg, Prefixed(prometheus.NewRegistry()))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan struct{})
	go func() { _ = a.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; _ = a.Close() }()
	prompt := strings.Repeat("Summarise the call with jane@example.com about order 12345 on 2024-03-15. ", 27) // ~2 KiB
	completion := strings.Repeat("The customer asked for a refund of $129.99 to card ending 1111. ", 8)
	b.ReportAllocs()
	for b.Loop() {
		a.Record(AuditEntry{RequestID: "req", Route: "/v1/chat/completions", Model: "m", Status: 200,
			Prompt: prompt, Completion: completion})
	}
}
