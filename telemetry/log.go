package telemetry

import (
	"io"
	"log/slog"
)

// NewLogger returns a logger writing to w as cfg says. cfg must have passed Validate; an
// unparsable level falls back to info.
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
