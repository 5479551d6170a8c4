package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(1)
	}
}

// config is what the flags set.
type config struct {
	rate       float64
	duration   time.Duration
	warmup     time.Duration
	maxTokens  int
	ttft, itl  time.Duration
	maxNumSeqs int
	timeout    time.Duration
	llmgateBin string
	llmsimBin  string
	targets    []string
	modes      []string

	// -serve-proxy mode.
	serveProxy bool
	upstream   string
	listen     string
}

// Limits that keep a run bounded whatever the flags say.
const (
	maxRate     = 5000
	maxDuration = 2 * time.Minute
	maxRequests = 200_000
)

var (
	allTargets = []string{targetDirect, targetProxy, targetGateway, targetTraced}
	allModes   = []string{modeNonStream, modeStream}
)

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Float64Var(&c.rate, "rate", 200, "requests started per second (open loop)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured run per target and mode")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "uncounted warm-up at the same rate before each run; 0 skips it")
	fs.IntVar(&c.maxTokens, "max-tokens", 32, "max_tokens of each request: llmsim generates exactly this many tokens")
	fs.DurationVar(&c.ttft, "ttft", 20*time.Millisecond, "llmsim -ttft: prefill time before the first token")
	fs.DurationVar(&c.itl, "itl", 2*time.Millisecond, "llmsim -itl: time between tokens")
	fs.IntVar(&c.maxNumSeqs, "max-num-seqs", 4096, "llmsim -max-num-seqs: large, so that llmsim does not queue at the chosen rate")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "per-request timeout; a request past it counts as an error")
	fs.StringVar(&c.llmgateBin, "llmgate", "", "llmgate `binary`; empty builds ./cmd/llmgate into a temporary directory")
	fs.StringVar(&c.llmsimBin, "llmsim", "", "llmsim `binary`; empty builds ./cmd/llmsim into a temporary directory")
	targets := fs.String("targets", strings.Join(allTargets, ","), "comma-separated targets to run, in order, from direct, proxy, llmgate, llmgate+tracing; "+
		"naming direct again at the end shows the run-to-run noise in its +p50 and +p99")
	modes := fs.String("modes", strings.Join(allModes, ","), "comma-separated modes to run: non-stream, stream")
	fs.BoolVar(&c.serveProxy, "serve-proxy", false, "internal: serve a plain httputil.ReverseProxy to -upstream on -listen and print its address")
	fs.StringVar(&c.upstream, "upstream", "", "-serve-proxy: upstream base `URL`")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:0", "-serve-proxy: listen `address`")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("parse flags: unexpected argument %q", fs.Arg(0))
	}
	var err error
	if c.targets, err = subset("-targets", *targets, allTargets); err != nil {
		return config{}, err
	}
	if c.modes, err = subset("-modes", *modes, allModes); err != nil {
		return config{}, err
	}
	return c, c.validate()
}

// subset parses a comma-separated list whose items must all be in allowed.
func subset(flagName, list string, allowed []string) ([]string, error) {
	var out []string
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		ok := false
		for _, a := range allowed {
			ok = ok || a == item
		}
		if !ok {
			return nil, fmt.Errorf("%s: unknown %q, want some of %s", flagName, item, strings.Join(allowed, ", "))
		}
		out = append(out, item)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: empty", flagName)
	}
	return out, nil
}

func (c config) validate() error {
	if c.serveProxy {
		if c.upstream == "" {
			return errors.New("-upstream: required with -serve-proxy")
		}
		return nil
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !(c.rate > 0 && c.rate <= maxRate) {
		bad("-rate: must be in (0, %d], got %v", maxRate, c.rate)
	}
	if c.duration <= 0 || c.duration > maxDuration {
		bad("-duration: must be in (0, %s], got %s", maxDuration, c.duration)
	}
	if c.warmup < 0 || c.warmup > maxDuration {
		bad("-warmup: must be in [0, %s], got %s", maxDuration, c.warmup)
	}
	if c.rate*c.duration.Seconds() > maxRequests {
		bad("-rate × -duration: at most %d requests per run, got %.0f", maxRequests, c.rate*c.duration.Seconds())
	}
	if c.maxTokens < 1 || c.maxTokens > 4096 {
		bad("-max-tokens: must be in [1, 4096], got %d", c.maxTokens)
	}
	if c.ttft <= 0 || c.itl <= 0 {
		bad("-ttft, -itl: must be > 0, got %s and %s", c.ttft, c.itl)
	}
	if c.maxNumSeqs < 1 {
		bad("-max-num-seqs: must be >= 1, got %d", c.maxNumSeqs)
	}
	if c.timeout <= 0 || c.timeout > 5*time.Minute {
		bad("-timeout: must be in (0, 5m], got %s", c.timeout)
	}
	return errors.Join(errs...)
}

// run is loadgen's program: the benchmark, or the reverse proxy in -serve-proxy mode.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if cfg.serveProxy {
		return serveProxy(ctx, cfg.upstream, cfg.listen, stderr)
	}
	dir, err := os.MkdirTemp("", "llmgate-bench-")
	if err != nil {
		return fmt.Errorf("make temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := buildBinaries(ctx, &cfg, dir, stderr); err != nil {
		return err
	}
	procs, err := startTargets(ctx, cfg, dir)
	defer procs.stop(stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "loadgen: llmsim %s, proxy %s, llmgate %s\n", procs.sim.url, procs.proxy.url, procs.gateway.url)

	loadBefore := loadAverage()
	client := newClient()
	defer client.CloseIdleConnections()
	var results []result
	for _, mode := range cfg.modes {
		for _, name := range cfg.targets {
			target := procs.target(name)
			if cfg.warmup > 0 {
				if _, err := runLoad(ctx, client, cfg, target.url, mode, cfg.warmup); err != nil {
					return err
				}
			}
			r, err := measure(ctx, client, cfg, target, procs.sim, mode)
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "loadgen: %-15s %-10s %7.1f req/s  p50 %7.2f ms  p99 %7.2f ms  errors %d\n",
				r.target, r.mode, r.rate(), ms(r.p50), ms(r.p99), r.errors)
			if r.firstErr != "" {
				fmt.Fprintf(stderr, "loadgen:   first error: %s\n", r.firstErr)
			}
			results = append(results, r)
		}
	}
	if anyErrors(results) {
		procs.printLogs(stderr)
	}
	env := runEnv{cfg: cfg, cpus: runtime.NumCPU(), goVersion: runtime.Version(), self: selfCPU(),
		loadBefore: loadBefore, loadAfter: loadAverage()}
	writeText(stdout, env, results)
	fmt.Fprintln(stdout)
	writeMarkdown(stdout, env, results)
	return nil
}

// measure runs one counted load against target and reads the CPU its process, and llmsim
// behind it, used meanwhile.
func measure(ctx context.Context, client httpDoer, cfg config, target, sim *proc, mode string) (result, error) {
	cpu0, err := cpuSeconds(target.pid())
	if err != nil {
		return result{}, err
	}
	sim0, err := cpuSeconds(sim.pid())
	if err != nil {
		return result{}, err
	}
	samples, err := runLoad(ctx, client, cfg, target.url, mode, cfg.duration)
	if err != nil {
		return result{}, err
	}
	cpu1, err := cpuSeconds(target.pid())
	if err != nil {
		return result{}, err
	}
	sim1, err := cpuSeconds(sim.pid())
	if err != nil {
		return result{}, err
	}
	r := summarize(target.name, mode, samples)
	r.cpu, r.simCPU = cpu1-cpu0, sim1-sim0
	return r, nil
}
