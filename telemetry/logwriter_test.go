package telemetry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// lockedBuffer records each Write separately, so tests can see that lines come out whole.
type lockedBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(p) > 0 && p[len(p)-1] != '\n' {
		return 0, fmt.Errorf("write of %d bytes does not end a line: %q", len(p), p[max(len(p)-20, 0):])
	}
	b.writes++
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// blockingWriter blocks every Write until release is closed, telling entered once the first
// Write has begun.
type blockingWriter struct {
	entered chan struct{}
	once    sync.Once
	release chan struct{}
	out     lockedBuffer
}

func newBlockingWriter() *blockingWriter {
	return &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.entered) })
	<-w.release
	return w.out.Write(p)
}

func newTestLogWriter(t testing.TB, out interface{ Write([]byte) (int, error) }, queue int) *LogWriter {
	t.Helper()
	w, err := NewLogWriter(out, queue, LogAccess, Prefixed(prometheus.NewRegistry()))
	if err != nil {
		t.Fatalf("NewLogWriter: %v", err)
	}
	return w
}

// runWriter starts w.Run and returns a func that stops it and waits for it.
func runWriter(t testing.TB, w *LogWriter) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	}
}

func TestLogWriterLinesWholeAndInOrder(t *testing.T) {
	t.Parallel()
	var out lockedBuffer
	w := newTestLogWriter(t, &out, 1<<14)
	stop := runWriter(t, w)
	const writers, perWriter = 8, 500
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range perWriter {
				// Lines of varied length, some longer than a batch, to test batching and splitting.
				pad := strings.Repeat("x", (i*37)%300)
				if i%97 == 0 {
					pad = strings.Repeat("y", batchCap+10)
				}
				fmt.Fprintf(w, "g=%d i=%d %s\n", g, i, pad)
			}
		})
	}
	wg.Wait()
	stop()

	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != writers*perWriter {
		t.Fatalf("got %d lines, want %d", len(lines), writers*perWriter)
	}
	next := make([]int, writers)
	for _, l := range lines {
		var g, i int
		if _, err := fmt.Sscanf(l, "g=%d i=%d", &g, &i); err != nil {
			t.Fatalf("line %.40q: %v", l, err)
		}
		if i != next[g] {
			t.Fatalf("writer %d: line %d came after %d, want in order", g, i, next[g]-1)
		}
		next[g]++
		want := (i * 37) % 300
		if i%97 == 0 {
			want = batchCap + 10
		}
		if got := len(l) - len(fmt.Sprintf("g=%d i=%d ", g, i)); got != want {
			t.Fatalf("writer %d line %d: padding %d bytes, want %d (line not whole)", g, i, got, want)
		}
	}
	if out.writes >= writers*perWriter {
		t.Errorf("%d writes for %d lines, want lines batched", out.writes, writers*perWriter)
	}
	if got := testutil.ToFloat64(w.dropped); got != 0 {
		t.Errorf("dropped = %v, want 0", got)
	}
}

func TestLogWriterDropsWhenFull(t *testing.T) {
	t.Parallel()
	bw := newBlockingWriter()
	const queue = 4
	w := newTestLogWriter(t, bw, queue)
	stop := runWriter(t, w)

	// The first line is taken by Run, which then blocks writing it.
	fmt.Fprintf(w, "line 0\n")
	<-bw.entered
	const total = 50
	for i := 1; i < total; i++ {
		n, err := fmt.Fprintf(w, "line %d\n", i) // must return although the writer is blocked
		if err != nil || n == 0 {
			t.Fatalf("Write(line %d) = %d, %v; want success", i, n, err)
		}
	}
	wantDropped := float64(total - 1 - queue)
	if got := testutil.ToFloat64(w.dropped); got != wantDropped {
		t.Errorf("dropped = %v, want %v", got, wantDropped)
	}
	close(bw.release)
	stop()
	want := "line 0\nline 1\nline 2\nline 3\nline 4\n"
	if got := bw.out.String(); got != want {
		t.Errorf("written = %q, want %q", got, want)
	}
}

func TestLogWriterRunDrainsOnCancel(t *testing.T) {
	t.Parallel()
	var out lockedBuffer
	w := newTestLogWriter(t, &out, 100)
	// Lines queued before Run starts, and Run's ctx already done: Run must write them all.
	for i := range 100 {
		fmt.Fprintf(w, "early %d\n", i)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := w.Run(ctx); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if got := strings.Count(out.String(), "\n"); got != 100 {
		t.Fatalf("after Run, %d lines written, want 100", got)
	}
	// After Run has returned, writes go straight through.
	fmt.Fprintf(w, "late\n")
	if got := out.String(); !strings.HasSuffix(got, "early 99\nlate\n") {
		t.Errorf("output ends %q, want the late line after the drained ones", got[max(len(got)-30, 0):])
	}
	if got := testutil.ToFloat64(w.dropped); got != 0 {
		t.Errorf("dropped = %v, want 0", got)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestLogWriterCountsFailedWrites(t *testing.T) {
	t.Parallel()
	w := newTestLogWriter(t, failingWriter{}, 10)
	for i := range 3 {
		fmt.Fprintf(w, "l%d\n", i)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_ = w.Run(ctx)
	fmt.Fprintf(w, "late\n")
	if got := testutil.ToFloat64(w.dropped); got != 4 {
		t.Errorf("dropped = %v, want 4 (3 queued in one failed batch, 1 late)", got)
	}
}

func TestNewLogWriterMetricName(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	if _, err := NewLogWriter(&lockedBuffer{}, 1, LogAccess, Prefixed(reg)); err != nil {
		t.Fatalf("NewLogWriter(access): %v", err)
	}
	if _, err := NewLogWriter(&lockedBuffer{}, 1, LogAudit, Prefixed(reg)); err != nil {
		t.Fatalf("NewLogWriter(audit) on the same registry: %v", err)
	}
	if _, err := NewLogWriter(&lockedBuffer{}, 1, LogAccess, Prefixed(reg)); err == nil {
		t.Errorf("second NewLogWriter(access) on the same registry: err = nil, want a registration error")
	}
	want := `
# HELP llmgate_log_lines_dropped_total Log lines lost because the log's queue was full or its write failed, by log.
# TYPE llmgate_log_lines_dropped_total counter
llmgate_log_lines_dropped_total{log="access"} 0
llmgate_log_lines_dropped_total{log="audit"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "llmgate_log_lines_dropped_total"); err != nil {
		t.Error(err)
	}
}

func TestNewLoggerThroughLogWriter(t *testing.T) {
	t.Parallel()
	var out lockedBuffer
	w := newTestLogWriter(t, &out, 16)
	log := NewLogger(w, Config{LogLevel: "warn"})
	log.Info("hidden")
	log.Warn("shown", "request_id", "r1")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_ = w.Run(ctx)
	got := out.String()
	if strings.Contains(got, "hidden") || !strings.Contains(got, `"msg":"shown","request_id":"r1"`) {
		t.Errorf("log output = %q, want only the warn line as JSON", got)
	}
}

func BenchmarkLogWriterWrite(b *testing.B) {
	w := newTestLogWriter(b, discard{}, 1<<16)
	stop := runWriter(b, w)
	defer stop()
	line := []byte(`{"time":"2025-01-01T00:00:00Z","level":"INFO","msg":"request","request_id":"abc-123","route":"/v1/chat/completions","model":"llama","status":200,"duration":12345678}` + "\n")
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		_, _ = w.Write(line)
	}
}

func BenchmarkLogWriterParallel(b *testing.B) {
	w := newTestLogWriter(b, discard{}, 1<<16)
	stop := runWriter(b, w)
	defer stop()
	line := []byte(strings.Repeat("x", 300) + "\n")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = w.Write(line)
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
