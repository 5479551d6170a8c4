package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Target names, as printed in the table.
const (
	targetDirect  = "direct"
	targetProxy   = "proxy"
	targetGateway = "llmgate"
	// targetTraced is llmgate with every request traced and its spans exported over OTLP/HTTP
	// to a sink in this process.
	targetTraced = "llmgate+tracing"
)

// startTimeout bounds how long a child may take to print its address and answer its
// readiness check.
const startTimeout = 30 * time.Second

// stopTimeout is how long a child may take to exit after SIGTERM before it is killed.
const stopTimeout = 10 * time.Second

// buildBinaries builds llmgate and llmsim into dir unless the flags named them.
func buildBinaries(ctx context.Context, cfg *config, dir string, stderr io.Writer) error {
	if cfg.llmgateBin != "" && cfg.llmsimBin != "" {
		return nil
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("find go to build llmgate and llmsim (or give -llmgate and -llmsim): %w", err)
	}
	out, err := exec.CommandContext(ctx, gobin, "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("find module root: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return errors.New("find module root: run loadgen inside the llmgate module, or give -llmgate and -llmsim")
	}
	fmt.Fprintf(stderr, "loadgen: building llmgate and llmsim\n")
	build := exec.CommandContext(ctx, gobin, "build", "-o", dir+string(filepath.Separator), "./cmd/llmgate", "./cmd/llmsim")
	build.Dir = filepath.Dir(gomod)
	build.Stdout, build.Stderr = stderr, stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build llmgate and llmsim: %w", err)
	}
	if cfg.llmgateBin == "" {
		cfg.llmgateBin = filepath.Join(dir, "llmgate")
	}
	if cfg.llmsimBin == "" {
		cfg.llmsimBin = filepath.Join(dir, "llmsim")
	}
	return nil
}

// proc is one child process serving HTTP on loopback.
type proc struct {
	name string
	url  string // base URL, without /v1
	cmd  *exec.Cmd
	log  string // the file its stdout and stderr go to
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// targets are the three child processes of a run.
type targets struct {
	sim, proxy, gateway, traced *proc
	sink                        *otlpSink
}

func (t *targets) target(name string) *proc {
	switch name {
	case targetDirect:
		return t.sim
	case targetProxy:
		return t.proxy
	case targetTraced:
		return t.traced
	default:
		return t.gateway
	}
}

// startTargets starts llmsim, then the reverse proxy and llmgate in front of it. On an error
// the processes already started are in the result, for stop.
func startTargets(ctx context.Context, cfg config, dir string) (*targets, error) {
	t := &targets{}
	var err error
	t.sim, err = startProc(ctx, dir, targetDirect, "/health", cfg.llmsimBin,
		"-listen", "127.0.0.1:0", "-model", benchModel,
		"-ttft", cfg.ttft.String(), "-itl", cfg.itl.String(),
		"-max-num-seqs", strconv.Itoa(cfg.maxNumSeqs), "-log-level", "warn")
	if err != nil {
		return t, err
	}
	self, err := os.Executable()
	if err != nil {
		return t, fmt.Errorf("find own executable for -serve-proxy: %w", err)
	}
	t.proxy, err = startProc(ctx, dir, targetProxy, "/health", self, "-serve-proxy", "-upstream", t.sim.url)
	if err != nil {
		return t, err
	}
	t.gateway, err = startProc(ctx, dir, targetGateway, "/readyz", cfg.llmgateBin,
		"-backend", t.sim.url, "-listen", "127.0.0.1:0", "-admin-listen", "127.0.0.1:0")
	if err != nil || !slices.Contains(cfg.targets, targetTraced) {
		return t, err
	}
	if t.sink, err = startSink(); err != nil {
		return t, err
	}
	t.traced, err = startProcEnv(ctx, dir, targetTraced, "/readyz", cfg.llmgateBin, t.sink.env(),
		"-backend", t.sim.url, "-listen", "127.0.0.1:0", "-admin-listen", "127.0.0.1:0")
	return t, err
}

// stop stops every started process, the gateway first.
func (t *targets) stop(stderr io.Writer) {
	for _, p := range []*proc{t.traced, t.gateway, t.proxy, t.sim} {
		if p != nil {
			if err := p.stop(); err != nil {
				fmt.Fprintf(stderr, "loadgen: stop %s: %v\n", p.name, err)
			}
		}
	}
	if t.sink != nil {
		fmt.Fprintf(stderr, "loadgen: the OTLP sink received %d exports, %d bytes\n", t.sink.exports.Load(), t.sink.bytes.Load())
		t.sink.close()
	}
}

// printLogs prints the end of each child's log, to explain errors.
func (t *targets) printLogs(w io.Writer) {
	for _, p := range []*proc{t.sim, t.proxy, t.gateway} {
		fmt.Fprintf(w, "loadgen: end of the %s log:\n%s\n", p.name, tail(p.log))
	}
}

// addrPattern finds the listen address in what llmsim, the -serve-proxy mode and llmgate
// print when they are ready to accept.
var addrPattern = regexp.MustCompile(`listening on http://([0-9.]+:[0-9]+)|"msg":"listening","listen":"([0-9.]+:[0-9]+)"`)

// startProc starts bin with args, its output going to a file in dir, waits until it prints
// its address, then until GET readyPath answers 200.
func startProc(ctx context.Context, dir, name, readyPath, bin string, args ...string) (*proc, error) {
	return startProcEnv(ctx, dir, name, readyPath, bin, nil, args...)
}

// startProcEnv is startProc with env added to the child's environment.
func startProcEnv(ctx context.Context, dir, name, readyPath, bin string, env []string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create %s log: %w", name, err)
	}
	defer f.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = childAttr()
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if p.url, err = waitAddr(ctx, logPath); err != nil {
		return p, fmt.Errorf("start %s: %w\n%s", name, err, tail(logPath))
	}
	if err := waitReady(ctx, p.url+readyPath); err != nil {
		return p, fmt.Errorf("start %s: %w\n%s", name, err, tail(logPath))
	}
	return p, nil
}

// pollInterval is how often startup polls a log file or a readiness endpoint.
const pollInterval = 20 * time.Millisecond

func waitAddr(ctx context.Context, logPath string) (string, error) {
	for {
		b, err := os.ReadFile(logPath)
		if err != nil {
			return "", fmt.Errorf("read log: %w", err)
		}
		if m := addrPattern.FindSubmatch(b); m != nil {
			return "http://" + string(m[1]) + string(m[2]), nil
		}
		if err := pause(ctx, pollInterval); err != nil {
			return "", fmt.Errorf("wait for the listening address: %w", err)
		}
	}
}

func waitReady(ctx context.Context, url string) error {
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("build readiness request: %w", err)
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if err := pause(ctx, pollInterval); err != nil {
			return fmt.Errorf("wait for %s to answer 200: %w", url, err)
		}
	}
}

// pause waits d or until ctx is done.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// tail returns the end of a child's log, for error messages.
func tail(logPath string) string {
	b, _ := os.ReadFile(logPath)
	const keep = 2000
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(bytes.TrimSpace(b))
}

// stop sends SIGTERM, and SIGKILL if the process has not exited within stopTimeout.
func (p *proc) stop() error {
	if p.cmd.Process == nil {
		return nil
	}
	exited := make(chan error, 1)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		_ = p.cmd.Process.Kill()
	}
	go func() { exited <- p.cmd.Wait() }() // waited for below, in every branch
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case err := <-exited:
		return exitErr(err)
	case <-t.C:
		_ = p.cmd.Process.Kill()
		err := <-exited
		return fmt.Errorf("did not exit within %s of SIGTERM; killed (%w)", stopTimeout, err)
	}
}

// exitErr drops the error of a child that exited because of the SIGTERM it was sent.
func exitErr(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
	}
	return err
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100 on Linux.
const clockTicks = 100

// cpuSeconds returns the user plus system CPU time process pid has used so far, from
// /proc/PID/stat. It counts every thread of the process.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read cpu time of pid %d: %w", pid, err)
	}
	return parseStatCPU(b)
}

// selfCPU is cpuSeconds of this process, NaN when it cannot be read.
func selfCPU() float64 {
	s, err := cpuSeconds(os.Getpid())
	if err != nil {
		return nan
	}
	return s
}

// loadAverage returns the 1-minute load average from /proc/loadavg, "?" when unreadable.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// parseStatCPU reads utime and stime, fields 14 and 15 of /proc/PID/stat. The command name,
// field 2, is in parentheses and may hold spaces, so fields are counted after its last ')'.
func parseStatCPU(stat []byte) (float64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("parse /proc stat: no ')' after the command name")
	}
	fields := strings.Fields(string(stat[i+1:]))
	const utime, stime = 14 - 3, 15 - 3 // fields[0] is field 3, the state
	if len(fields) <= stime {
		return 0, fmt.Errorf("parse /proc stat: %d fields after the command name, want more than %d", len(fields), stime)
	}
	u, err := strconv.ParseUint(fields[utime], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse /proc stat utime: %w", err)
	}
	s, err := strconv.ParseUint(fields[stime], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse /proc stat stime: %w", err)
	}
	return float64(u+s) / clockTicks, nil
}
