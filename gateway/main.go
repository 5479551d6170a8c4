package gateway

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/llmgate/llmgate/telemetry"
)

// version is the build's version, set at link time with
// -ldflags "-X github.com/llmgate/llmgate/gateway.version=…".
var version = "dev"

// ErrInvalidConfig marks a config that did not validate; Main's caller exits 1 on it.
var ErrInvalidConfig = errors.New("invalid config")

// Main is llmgate's program: it parses args, loads and validates the config, and runs the
// gateway until ctx is done. Messages and logs go to stderr. It returns flag.ErrHelp after
// -help, and nil after -version, -check on a good config, or a clean shutdown.
func Main(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("llmgate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		configPath  = fs.String("config", os.Getenv("LLMGATE_CONFIG"), "config `file` (also $LLMGATE_CONFIG)")
		listen      = fs.String("listen", "", "public listen `address`, overriding the config (default 127.0.0.1:8080)")
		adminListen = fs.String("admin-listen", "", "admin listen `address` for /metrics, overriding the config (default 127.0.0.1:8081)")
		check       = fs.Bool("check", false, "validate the config, list every problem, and exit")
		showVersion = fs.Bool("version", false, "print the version and exit")
		backends    stringList
	)
	fs.Var(&backends, "backend", "backend base `URL` for a quick start without a config file; repeatable; every model the backends list is served")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: llmgate [-config FILE | -backend URL ...] [flags]\n\nllmgate is an OpenAI-compatible gateway for self-hosted inference servers.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if *showVersion {
		fmt.Fprintf(stderr, "llmgate %s\n", version)
		return nil
	}
	cfg, err := buildConfig(*configPath, backends, *listen, *adminListen)
	if err != nil {
		fmt.Fprintf(stderr, "llmgate: %s\n", indentErrors(err))
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if *check {
		fmt.Fprintln(stderr, "llmgate: config OK")
		return nil
	}
	reg := telemetry.NewRegistry()
	logs, err := openLogs(ctx, cfg.Telemetry, telemetry.Prefixed(reg))
	if err != nil {
		return err
	}
	defer logs.close() // after tracing's shutdown, which may log
	log := logs.newLogger(cfg.Telemetry)
	tracing, err := telemetry.NewTracing(ctx, cfg.Telemetry.Tracing, os.Getenv, version)
	if err != nil {
		return fmt.Errorf("start tracing: %w", err)
	}
	log.Info("tracing", slog.String("export", tracing.Describe()))
	defer shutdownTracing(ctx, tracing, log)
	g, err := New(cfg, Options{Logger: log, Registry: reg, Audit: logs.audit, Version: version,
		TracerProvider: tracing.Provider()})
	if err != nil {
		return fmt.Errorf("start gateway: %w", err)
	}
	return g.Run(ctx)
}

// shutdownTracing flushes the spans still buffered, last of all (STYLE §2.5), within a bound
// so that an unreachable collector cannot hold the exit.
func shutdownTracing(ctx context.Context, t *telemetry.Tracing, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second) // ctx is done by now
	defer cancel()
	if err := t.Shutdown(ctx); err != nil {
		log.Warn("flush spans", slog.Any("error", err))
	}
}

// buildConfig loads the config file, or makes one from -backend flags, then applies the
// listen overrides and validates.
func buildConfig(path string, backends []string, listen, adminListen string) (Config, error) {
	var cfg Config
	switch {
	case path != "" && len(backends) > 0:
		return Config{}, errors.New("-backend: give either -config or -backend, not both")
	case path != "":
		var err error
		if cfg, err = LoadConfig(path); err != nil {
			return Config{}, err
		}
	case len(backends) > 0:
		for i, u := range backends {
			cfg.Backends = append(cfg.Backends, BackendConfig{Name: backendName(i, u), URL: u})
		}
	default:
		return Config{}, errors.New("no backends: give -config FILE (or $LLMGATE_CONFIG) or at least one -backend URL")
	}
	if listen != "" {
		cfg.Listen = listen
	}
	if adminListen != "" {
		cfg.AdminListen = adminListen
	}
	cfg = cfg.withDefaults()
	return cfg, cfg.Validate()
}

// backendName names a -backend flag's backend by its host and port, falling back to its index.
func backendName(i int, raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return u.Host
	}
	return fmt.Sprintf("backend-%d", i)
}

// indentErrors puts each of a joined error's lines on its own indented line.
func indentErrors(err error) string {
	lines := strings.Split(err.Error(), "\n")
	if len(lines) == 1 {
		return lines[0]
	}
	return "config has problems:\n  " + strings.Join(lines, "\n  ")
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
