package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// AuditConfig is the content audit log: one JSON line per request with its prompt and
// completion, redacted. Its zero value is off.
type AuditConfig struct {
	// Enabled turns the audit log on. False, the default, writes nothing.
	Enabled bool `yaml:"enabled"`
	// Path is the audit log file, created with mode 0600. Required when Enabled.
	Path string `yaml:"path"`
	// MaxSizeMB rotates the file on the write that would take it past this many MiB. Zero
	// means 100.
	MaxSizeMB int `yaml:"max_size_mb"`
	// MaxBackups is how many rotated files are kept: path.1 (the newest) to path.N. Zero
	// means 5.
	MaxBackups int `yaml:"max_backups"`
	// MaxContentBytes clips the prompt and the completion, each, to this many bytes before
	// redaction. Zero means 65536.
	MaxContentBytes int `yaml:"max_content_bytes"`
}

// Audit defaults, for the fields whose zero value means the default.
const (
	defaultAuditMaxSizeMB       = 100
	defaultAuditMaxBackups      = 5
	defaultAuditMaxContentBytes = 64 << 10
	// maxAuditContentBytes bounds max_content_bytes: the gateway keeps that much generated text
	// per request for the audit log.
	maxAuditContentBytes = 4 << 20
)

// AuditQueue is the number of audit lines that may wait for the file; past it lines are
// dropped and counted. With the default max_content_bytes a line is at most a few hundred KiB.
const AuditQueue = 256

// WithDefaults returns c with zero fields set to their documented defaults.
func (c AuditConfig) WithDefaults() AuditConfig {
	if c.MaxSizeMB == 0 {
		c.MaxSizeMB = defaultAuditMaxSizeMB
	}
	if c.MaxBackups == 0 {
		c.MaxBackups = defaultAuditMaxBackups
	}
	if c.MaxContentBytes == 0 {
		c.MaxContentBytes = defaultAuditMaxContentBytes
	}
	return c
}

// Validate reports every problem in c, each prefixed with its path under prefix
// ("telemetry.audit."). Zero fields are valid: they mean the defaults.
func (c AuditConfig) Validate(prefix string) error { return c.validate(prefix, "") }

// validate is Validate that also checks that the audit file is not the access log's file.
func (c AuditConfig) validate(prefix, logOutput string) error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(prefix+format, a...)) }
	switch {
	case c.Enabled && c.Path == "":
		add("path: must be set when enabled")
	case c.Path != "" && (c.Path == "stdout" || c.Path == "stderr"):
		add("path: must be a file, got %q", c.Path)
	case c.Path != "" && logOutput != "" && filepath.Clean(c.Path) == filepath.Clean(logOutput):
		add("path: must differ from log_output, both are %q", c.Path)
	case c.Enabled:
		if err := checkFilePath(c.Path); err != nil {
			add("path: %w", err)
		}
	}
	if c.MaxSizeMB < 0 {
		add("max_size_mb: must be > 0 (0 means 100), got %d", c.MaxSizeMB)
	}
	if c.MaxBackups < 0 {
		add("max_backups: must be > 0 (0 means 5), got %d", c.MaxBackups)
	}
	if c.MaxContentBytes < 0 || c.MaxContentBytes > maxAuditContentBytes {
		add("max_content_bytes: must be > 0 (0 means 65536) and at most %d, got %d", maxAuditContentBytes, c.MaxContentBytes)
	}
	return errors.Join(errs...)
}

// AuditEntry is one request's record in the audit log. Record does not keep its strings
// after it returns, so they may be views of buffers the caller reuses.
type AuditEntry struct {
	Time      time.Time // when the request arrived; zero means now
	RequestID string
	Route     string
	Model     string
	Tenant    string
	Backend   string
	Status    int
	// Prompt is the request's text content as sent: the messages' text, the prompt or the
	// input. It is clipped and redacted before it is written.
	Prompt string
	// Completion is the generated text. It is clipped and redacted before it is written.
	Completion string
}

// AuditLog writes the content audit log: one JSON line per request, prompt and completion
// clipped to max_content_bytes and redacted (see Redact), to a size-rotated file. Record
// redacts and encodes on the caller's goroutine and queues the line; Run writes it. It is
// safe for concurrent use. A nil *AuditLog records nothing.
type AuditLog struct {
	maxContent int
	file       *RotatingFile
	w          *LogWriter
}

// NewAuditLog opens cfg.Path (mode 0600) for appending and registers
// llmgate_log_lines_dropped_total{log="audit"} on reg, which should already add the llmgate_
// prefix. cfg must have passed Validate with Enabled set. The caller runs Run and then calls
// Close.
func NewAuditLog(cfg AuditConfig, reg prometheus.Registerer) (*AuditLog, error) {
	cfg = cfg.WithDefaults()
	if cfg.Path == "" {
		return nil, errors.New("open audit log: no path")
	}
	f, err := OpenRotatingFile(cfg.Path, int64(cfg.MaxSizeMB)<<20, cfg.MaxBackups)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	w, err := NewLogWriter(f, AuditQueue, LogAudit, reg)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return &AuditLog{maxContent: cfg.MaxContentBytes, file: f, w: w}, nil
}

// auditLine is the JSON shape of an audit line.
type auditLine struct {
	Time            string `json:"time"`
	RequestID       string `json:"request_id"`
	Route           string `json:"route"`
	Model           string `json:"model"`
	Tenant          string `json:"tenant,omitempty"`
	Backend         string `json:"backend,omitempty"`
	Status          int    `json:"status"`
	Prompt          string `json:"prompt"`
	PromptBytes     int    `json:"prompt_bytes"`
	Completion      string `json:"completion"`
	CompletionBytes int    `json:"completion_bytes"`
}

// Record queues e's line: prompt and completion each clipped to max_content_bytes, then
// redacted. It never waits on I/O; a line that finds the queue full is dropped and counted.
// prompt_bytes and completion_bytes give the sizes before clipping.
func (a *AuditLog) Record(e AuditEntry) {
	if a == nil {
		return
	}
	t := e.Time
	if t.IsZero() {
		t = time.Now()
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // prompts are full of code; keep < > & readable
	err := enc.Encode(auditLine{
		Time: t.UTC().Format(time.RFC3339Nano), RequestID: e.RequestID, Route: e.Route,
		Model: e.Model, Tenant: e.Tenant, Backend: e.Backend, Status: e.Status,
		Prompt: Redact(clip(e.Prompt, a.maxContent)), PromptBytes: len(e.Prompt),
		Completion: Redact(clip(e.Completion, a.maxContent)), CompletionBytes: len(e.Completion),
	})
	if err != nil { // strings and ints always encode
		return
	}
	_, _ = a.w.Write(buf.Bytes()) // Encode ended the line

}

// Run writes recorded lines until ctx is done, then writes those still queued and returns
// nil. A nil *AuditLog returns at once.
func (a *AuditLog) Run(ctx context.Context) error {
	if a == nil {
		return nil
	}
	return a.w.Run(ctx)
}

// Close closes the file; call it after Run has returned. Lines recorded later are dropped
// and counted. Close is idempotent.
func (a *AuditLog) Close() error {
	if a == nil {
		return nil
	}
	return a.file.Close()
}

// maxClipBackoff bounds how far clip moves back to avoid cutting a word.
const maxClipBackoff = 256

// clip returns s cut to at most n bytes. When it cuts, it moves back to the last space or line
// break (within maxClipBackoff bytes), so that a key, address or number is not left half
// there, where the rest of it would no longer be recognised and redacted; and past a trailing
// run of number words, which a card or phone number split across spaces would leave.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	floor := max(cut-maxClipBackoff, 0)
	for i := cut; i > floor; i-- {
		if isSpace(s[i]) {
			cut = i
			break
		}
	}
	for cut > floor && (isSpace(s[cut-1]) || isNumberByte(s[cut-1])) {
		cut--
	}
	return s[:cut]
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }
