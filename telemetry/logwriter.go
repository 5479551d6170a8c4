package telemetry

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	// lineCap is the capacity of a new pooled line buffer; an access-log line fits.
	lineCap = 1 << 10
	// maxPooledLine is the largest line buffer put back in the pool, so that one huge line
	// does not stay pinned in memory.
	maxPooledLine = 1 << 20
	// batchCap is how many bytes of whole lines Run gathers into one write.
	batchCap = 64 << 10
)

// LogWriter is an io.Writer for log lines that never makes its caller wait on I/O. Write
// copies the line into a bounded queue and returns; Run, in its own goroutine, writes the
// queued lines to the underlying writer, several whole lines per write, in the order they
// were queued. When the queue is full a line is dropped and counted in
// llmgate_log_lines_dropped_total{log=…}, so a slow disk or a stalled pipe never stalls a
// request. Each Write must carry whole lines, as a slog handler's do.
//
// Lifecycle: Write may be called before Run starts (lines wait in the queue). When Run's ctx
// is done, Run stops taking lines from Write, writes every line already queued, and returns;
// each line given to Write is thus either written or counted as dropped. Writes after that
// go straight to the underlying writer under a lock, so that the last messages of a shutdown
// still come out. Close the underlying writer only after Run has returned.
//
// A LogWriter is safe for concurrent use. Run must be called at most once.
type LogWriter struct {
	out     io.Writer
	queue   chan *[]byte
	pool    sync.Pool // *[]byte line buffers
	dropped prometheus.Counter

	mu     sync.RWMutex // Write holds it shared to queue; Run holds it to set closed
	closed bool         // Run has stopped taking lines: Write writes directly
	direct sync.Mutex   // serialises writes to out once Run drains or has returned
}

// NewLogWriter returns a LogWriter for out that queues up to queue lines (at least 1), and
// registers llmgate_log_lines_dropped_total{log=name} on reg, which should already add the
// llmgate_ prefix (see Prefixed). name is LogAccess or LogAudit.
func NewLogWriter(out io.Writer, queue int, name string, reg prometheus.Registerer) (*LogWriter, error) {
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "log_lines_dropped_total",
		Help:        "Log lines lost because the log's queue was full or its write failed, by log.",
		ConstLabels: prometheus.Labels{"log": name}})
	if err := reg.Register(dropped); err != nil {
		return nil, fmt.Errorf("register %s log metrics: %w", name, err)
	}
	w := &LogWriter{out: out, queue: make(chan *[]byte, max(queue, 1)), dropped: dropped}
	w.pool.New = func() any { b := make([]byte, 0, lineCap); return &b }
	return w, nil
}

// Write queues a copy of p, or drops it when the queue is full. It never blocks on I/O while
// Run runs, and always reports success: a lost line is counted, not returned.
func (w *LogWriter) Write(p []byte) (int, error) {
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return w.writeDirect(p)
	}
	b := w.pool.Get().(*[]byte)
	*b = append((*b)[:0], p...)
	select {
	case w.queue <- b:
	default:
		w.put(b)
		w.dropped.Inc()
	}
	w.mu.RUnlock()
	return len(p), nil
}

// writeDirect writes p to the underlying writer, once Run no longer does.
func (w *LogWriter) writeDirect(p []byte) (int, error) {
	w.direct.Lock()
	defer w.direct.Unlock()
	if _, err := w.out.Write(p); err != nil {
		w.dropped.Inc()
	}
	return len(p), nil
}

// Run writes queued lines until ctx is done, then writes every line still queued and
// returns nil. Lines that cannot be written (the underlying writer failed) are counted as
// dropped. Run returns only once the queue is written out, so a writer that blocks forever
// holds it.
func (w *LogWriter) Run(ctx context.Context) error {
	f := flusher{w: w, batch: make([]byte, 0, batchCap)}
	for {
		select {
		case b := <-w.queue:
			f.add(b)
			f.addQueued()
			f.flush()
		case <-ctx.Done():
			w.direct.Lock()
			defer w.direct.Unlock()
			w.mu.Lock()
			w.closed = true // no Write queues after this
			w.mu.Unlock()
			f.addQueued()
			f.flush()
			return nil
		}
	}
}

// flusher gathers queued lines into batches of whole lines for Run.
type flusher struct {
	w     *LogWriter
	batch []byte
	lines int // lines in batch
}

// addQueued adds every line queued now, without waiting for more.
func (f *flusher) addQueued() {
	for {
		select {
		case b := <-f.w.queue:
			f.add(b)
		default:
			return
		}
	}
}

// add appends line b to the batch, writing the batch first when b would not fit, and writes a
// line larger than a batch on its own.
func (f *flusher) add(b *[]byte) {
	defer f.w.put(b)
	if len(f.batch)+len(*b) > cap(f.batch) {
		f.flush()
	}
	if len(*b) > cap(f.batch) {
		f.write(*b, 1)
		return
	}
	f.batch = append(f.batch, *b...)
	f.lines++
}

// flush writes the batch.
func (f *flusher) flush() {
	if len(f.batch) > 0 {
		f.write(f.batch, f.lines)
	}
	f.batch, f.lines = f.batch[:0], 0
}

func (f *flusher) write(p []byte, lines int) {
	if _, err := f.w.out.Write(p); err != nil {
		f.w.dropped.Add(float64(lines))
	}
}

func (w *LogWriter) put(b *[]byte) {
	if cap(*b) <= maxPooledLine {
		w.pool.Put(b)
	}
}
