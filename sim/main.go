package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// cutWait is how long Main waits for requests to unwind after cutting them.
const cutWait = 5 * time.Second

// Main runs llmsim: it parses args, listens, prints "llmsim: listening on http://HOST:PORT"
// to stderr, and serves until ctx is done. It then stops accepting, lets in-flight requests
// run for -shutdown-grace, cancels those still running, and returns nil once every handler
// has returned. -help prints the usage text and returns [flag.ErrHelp]. Logs go to stderr.
func Main(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	s, err := New(cfg, log)
	if err != nil {
		return fmt.Errorf("create simulator: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if _, err := fmt.Fprintf(stderr, "llmsim: listening on http://%s\n", ln.Addr()); err != nil {
		_ = ln.Close() // Already failing; the write error is the one to report.
		return fmt.Errorf("report address: %w", err)
	}
	return serve(ctx, ln, s, cfg.ShutdownGrace, log)
}

// serve serves h on ln until ctx is done, then shuts down as Main describes.
func serve(ctx context.Context, ln net.Listener, h http.Handler, grace time.Duration, log *slog.Logger) error {
	base, cut := context.WithCancel(context.WithoutCancel(ctx))
	defer cut()
	srv := &http.Server{
		Handler:           h,
		BaseContext:       func(net.Listener) context.Context { return base },
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	served := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() { served <- srv.Serve(ln) })
	defer wg.Wait()

	select {
	case err := <-served:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	graceCtx, cancel := context.WithTimeout(base, grace)
	defer cancel()
	if err := srv.Shutdown(graceCtx); err == nil {
		return nil
	}
	log.InfoContext(ctx, "cutting in-flight requests", slog.Duration("grace", grace))
	cut()
	waitCtx, cancelWait := context.WithTimeout(context.WithoutCancel(ctx), cutWait)
	defer cancelWait()
	if err := srv.Shutdown(waitCtx); err != nil {
		if cerr := srv.Close(); cerr != nil && !errors.Is(cerr, http.ErrServerClosed) {
			return fmt.Errorf("close server: %w", cerr)
		}
	}
	return nil
}
