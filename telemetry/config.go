package telemetry

import (
	"errors"
	"fmt"
	"log/slog"
)

// Config is the telemetry section of the gateway's config file. The zero value logs JSON at
// level info.
type Config struct {
	// LogLevel is the minimum level written: debug, info, warn or error. Empty means info.
	LogLevel string `yaml:"log_level"`
	// LogFormat is json or text. Empty means json, one object per line.
	LogFormat string `yaml:"log_format"`
	// LogOutput is where the logs go: stdout, stderr, or the path of a file to append to.
	// Empty means stdout.
	LogOutput string `yaml:"log_output"`
	// Audit is the content audit log. Its zero value is off.
	Audit AuditConfig `yaml:"audit"`
	// Pprof serves Go's profiler under /debug/pprof/ on the admin listener. False, the
	// default, serves nothing there.
	Pprof bool `yaml:"pprof"`
	// Tracing configures OTLP trace export; its zero value defers to the OTEL_* environment.
	Tracing TracingConfig `yaml:"tracing"`
}

// WithDefaults returns c with empty fields set to their documented defaults.
func (c Config) WithDefaults() Config {
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.LogFormat == "" {
		c.LogFormat = "json"
	}
	if c.LogOutput == "" {
		c.LogOutput = "stdout"
	}
	c.Audit = c.Audit.WithDefaults()
	c.Tracing = c.Tracing.WithDefaults()
	return c
}

// Validate reports every problem in c, each prefixed with its path under prefix.
func (c Config) Validate(prefix string) error {
	var errs []error
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, fmt.Errorf("%slog_level: %w", prefix, err))
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		errs = append(errs, fmt.Errorf("%slog_format: must be json or text, got %q", prefix, c.LogFormat))
	}
	if err := checkLogPath(c.LogOutput); err != nil {
		errs = append(errs, fmt.Errorf("%slog_output: %w", prefix, err))
	}
	errs = append(errs, c.Audit.validate(prefix+"audit.", c.LogOutput))
	if err := c.Tracing.Validate(prefix + "tracing."); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("must be debug, info, warn or error, got %q", s)
	}
	return l, nil
}
