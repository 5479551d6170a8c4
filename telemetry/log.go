package telemetry

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// Log names, the values of the log label of llmgate_log_lines_dropped_total.
const (
	LogAccess = "access"
	LogAudit  = "audit"
)

// AccessLogQueue is the number of access-log lines that may wait for the log's writer; past it
// lines are dropped and counted. At a few hundred bytes a line it holds a few MiB.
const AccessLogQueue = 8192

// NewLogger returns a logger writing to w as cfg says. cfg must have passed Validate; an
// unparsable level falls back to info. For the gateway's logs w is a LogWriter, so that no
// request waits on the log's I/O; start-up messages written before it exists may use stderr.
func NewLogger(w io.Writer, cfg Config) *slog.Logger {
	cfg = cfg.WithDefaults()
	level, err := parseLevel(cfg.LogLevel)
	if err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// OpenLogOutput opens the output that cfg.LogOutput names: the process's stdout or stderr,
// whose Close does nothing, or a file opened for appending (created with mode 0640), whose
// Close closes it. Close it only after the LogWriter's Run writing to it has returned.
func OpenLogOutput(cfg Config) (io.WriteCloser, error) {
	switch out := cfg.WithDefaults().LogOutput; out {
	case "stdout":
		return nopCloser{os.Stdout}, nil
	case "stderr":
		return nopCloser{os.Stderr}, nil
	default:
		f, err := os.OpenFile(out, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, fmt.Errorf("open log output: %w", err)
		}
		return f, nil
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// checkLogPath reports whether out can name a log output: stdout, stderr (or empty, meaning
// stdout), or a file whose directory exists.
func checkLogPath(out string) error {
	switch out {
	case "", "stdout", "stderr":
		return nil
	}
	return checkFilePath(out)
}

// checkFilePath reports whether path can name a log file: not a directory, in a directory that
// exists.
func checkFilePath(path string) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("%q is a directory, want a file", path)
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("directory %q of %q does not exist", dir, path)
	case err != nil:
		return fmt.Errorf("check %q: %w", path, err)
	case !fi.IsDir():
		return fmt.Errorf("%q of %q is not a directory", dir, path)
	}
	return nil
}
