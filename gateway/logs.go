package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/telemetry"
)

// logs are the access log's writer and the audit log, written by goroutines of their own so
// that a request never waits on a disk or a pipe. Main owns them: open before the gateway,
// close after it has stopped, so that every line queued by a request is written out.
type logs struct {
	out    io.WriteCloser
	access *telemetry.LogWriter
	audit  *telemetry.AuditLog // nil when the audit log is off
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

// openLogs opens telemetry.log_output and, when enabled, the audit log, registering their
// dropped-line counters on reg, and starts their writers.
func openLogs(ctx context.Context, cfg telemetry.Config, reg prometheus.Registerer) (*logs, error) {
	out, err := telemetry.OpenLogOutput(cfg)
	if err != nil {
		return nil, err
	}
	l := &logs{out: out}
	if l.access, err = telemetry.NewLogWriter(out, telemetry.AccessLogQueue, telemetry.LogAccess, reg); err != nil {
		_ = out.Close()
		return nil, fmt.Errorf("start access log: %w", err)
	}
	if cfg.Audit.Enabled {
		if l.audit, err = telemetry.NewAuditLog(cfg.Audit, reg); err != nil {
			_ = out.Close()
			return nil, fmt.Errorf("open audit log: %w", err)
		}
	}
	ctx, stop := context.WithCancel(context.WithoutCancel(ctx)) // the writers outlive Main's ctx: they drain at close
	l.stop = stop
	l.wg.Go(func() { _ = l.access.Run(ctx) })
	if l.audit != nil {
		l.wg.Go(func() { _ = l.audit.Run(ctx) })
	}
	return l, nil
}

// close has the writers write out what is queued, within a bound so that an output that
// blocks for good cannot hold the exit, then closes the files.
func (l *logs) close() {
	l.stop()
	waitBounded(&l.wg, 10*time.Second)
	if l.audit != nil {
		_ = l.audit.Close()
	}
	_ = l.out.Close()
}

// auditRecord is the audit-log entry of a finished request: its prompt and completion text,
// which the audit log clips and redacts before writing.
func (g *Gateway) auditRecord(st *requestState) {
	e := telemetry.AuditEntry{Time: st.start, RequestID: st.id, Route: st.kind.path(), Model: clip(st.req.model),
		Tenant: telemetry.NoTenant, Backend: st.backend, Status: st.status,
		Prompt: promptText(st.req, g.cfg.Telemetry.Audit.MaxContentBytes), Completion: unsafeString(st.streamed)}
	g.audit.Record(e)
}

// promptText is the text of a request's prompt, for the audit log: chat messages as
// "role: content" lines, a completion's prompt or an embedding's input. It stops once it has
// more than limit bytes; the audit log clips at limit.
func promptText(req apiRequest, limit int) string {
	var b strings.Builder
	add := func(s string) bool {
		b.WriteString(s)
		return b.Len() <= limit
	}
	js := unsafeString(req.body)
	switch req.kind {
	case routeChat:
		gjson.Get(js, "messages").ForEach(func(_, m gjson.Result) bool {
			return add(m.Get("role").String()+": ") && add(messageText(m.Get("content"))) && add("\n")
		})
	default:
		field := "input"
		if req.kind == routeCompletions {
			field = "prompt"
		}
		v := gjson.Get(js, field)
		if !v.IsArray() {
			return v.String()
		}
		v.ForEach(func(_, e gjson.Result) bool { return add(e.String()) && add("\n") })
	}
	return b.String()
}

// newLogger returns the gateway's logger, writing through the access log's writer.
func (l *logs) newLogger(cfg telemetry.Config) *slog.Logger {
	return telemetry.NewLogger(l.access, cfg)
}
