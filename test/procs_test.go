package test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// startTimeout bounds how long a binary may take to print its listening line. llmsim loads
	// two BPE tables first, which takes seconds under -race on a busy two-core machine.
	startTimeout = 60 * time.Second
	// stopTimeout bounds the wait for a process after SIGKILL.
	stopTimeout = 10 * time.Second
	// pollInterval is how often the poll helpers look again.
	pollInterval = 5 * time.Millisecond
)

// proc is one started binary. Its stdout and stderr go to a file, so that the process needs
// no copying goroutine and its output can be read at any time.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	watched bool // exited may start the reaper; false only for the shared llmsim

	reaper sync.Once
	done   chan struct{} // closed once the process is reaped; made by reap
}

// startProc starts the binary name with args, its output going to logPath. env entries are
// added to this process's environment.
func startProc(name, logPath string, watched bool, env []string, args ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create %s log: %w", name, err)
	}
	defer f.Close() // the child has its own descriptor
	cmd := exec.Command(bin(name), args...)
	cmd.Stdout, cmd.Stderr = f, f
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return &proc{name: name, cmd: cmd, logPath: logPath, watched: watched}, nil
}

// reap starts, once, the goroutine that waits for the process. The goroutine ends when the
// process does; stop makes sure of that.
func (p *proc) reap() {
	p.reaper.Do(func() {
		p.done = make(chan struct{})
		go func() {
			_ = p.cmd.Wait() // the exit status is read from cmd.ProcessState
			close(p.done)
		}()
	})
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	p.reap()
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitExit waits up to timeout for the process to end and returns its exit code; ok is
// false if it was still running.
func (p *proc) waitExit(timeout time.Duration) (code int, ok bool) {
	p.reap()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), true
	case <-t.C:
		return -1, false
	}
}

// stop kills the process if it still runs and waits until it is reaped.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Kill() // it may have exited just now; the wait below covers both
	if _, ok := p.waitExit(stopTimeout); !ok {
		panic(fmt.Sprintf("%s (pid %d) did not exit %s after SIGKILL", p.name, p.cmd.Process.Pid, stopTimeout))
	}
}

// logs returns everything the process has written so far.
func (p *proc) logs() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(read %s log: %v)", p.name, err)
	}
	return string(b)
}

// waitLine polls the log until match accepts a line, and returns what match returned for it.
// It fails early if the process exits first.
func waitLine[T any](p *proc, timeout time.Duration, what string, match func(line string) (T, bool)) (T, error) {
	var zero T
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		gone := p.watched && p.exited() // read before the log, so a last line is not missed
		logs := p.logs()
		for line := range strings.Lines(logs) {
			if v, ok := match(line); ok {
				return v, nil
			}
		}
		switch {
		case gone:
			return zero, fmt.Errorf("%s exited before logging %s:\n%s", p.name, what, logs)
		case time.Now().After(deadline):
			return zero, fmt.Errorf("%s logged no %s within %s:\n%s", p.name, what, timeout, logs)
		}
		<-tick.C
	}
}

// poll calls cond every pollInterval until it returns true or timeout passes, and returns
// cond's last result.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
}

// own makes p the test's: on cleanup it is killed and reaped, a data race it reported fails
// the test, and when the test failed its log is shown.
func own(t *testing.T, p *proc) {
	t.Helper()
	t.Cleanup(func() {
		p.stop()
		logs := p.logs()
		if race := raceReport(logs); race != "" {
			t.Errorf("%s reported a data race:\n%s", p.name, race)
		}
		if t.Failed() {
			t.Logf("%s log (%s):\n%s", p.name, p.cmd.String(), tail(logs, 8000))
		}
	})
}

// raceReport returns the race detector's report in logs, or "".
func raceReport(logs string) string {
	i := strings.Index(logs, "WARNING: DATA RACE")
	if i < 0 {
		return ""
	}
	return tail(logs[i:], 6000)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// simProc is a running llmsim.
type simProc struct {
	*proc
	url string // base URL, http://127.0.0.1:PORT
}

var simListening = regexp.MustCompile(`llmsim: listening on (http://\S+)`)

// newSimProc starts llmsim on a free loopback port with args and waits until it listens.
func newSimProc(logPath string, watched bool, args ...string) (*simProc, error) {
	p, err := startProc("llmsim", logPath, watched, nil, append([]string{"-listen", "127.0.0.1:0"}, args...)...)
	if err != nil {
		return nil, err
	}
	url, err := waitLine(p, startTimeout, "listening line", func(line string) (string, bool) {
		m := simListening.FindStringSubmatch(line)
		if m == nil {
			return "", false
		}
		return m[1], true
	})
	if err != nil {
		p.stop()
		return nil, err
	}
	return &simProc{proc: p, url: url}, nil
}

// startSim starts an llmsim that belongs to t.
func startSim(t *testing.T, args ...string) *simProc {
	t.Helper()
	s, err := newSimProc(filepath.Join(t.TempDir(), "llmsim.log"), true, args...)
	if err != nil {
		t.Fatal(err)
	}
	own(t, s.proc)
	return s
}

// gwProc is a running llmgate.
type gwProc struct {
	*proc
	url   string // public base URL
	admin string // admin base URL
}

// startGateway starts llmgate with args (and env added to its environment) and waits for its
// "listening" log line, which names the addresses it bound.
func startGateway(t *testing.T, env []string, args ...string) *gwProc {
	t.Helper()
	p, err := startProc("llmgate", filepath.Join(t.TempDir(), "llmgate.log"), true, env, args...)
	if err != nil {
		t.Fatal(err)
	}
	own(t, p)
	addrs, err := waitLine(p, startTimeout, `"listening" line`, func(line string) ([2]string, bool) {
		var l struct {
			Msg         string `json:"msg"`
			Listen      string `json:"listen"`
			AdminListen string `json:"admin_listen"`
		}
		if json.Unmarshal([]byte(line), &l) != nil || l.Msg != "listening" {
			return [2]string{}, false
		}
		return [2]string{l.Listen, l.AdminListen}, l.Listen != "" && l.AdminListen != ""
	})
	if err != nil {
		t.Fatal(err)
	}
	return &gwProc{proc: p, url: "http://" + addrs[0], admin: "http://" + addrs[1]}
}

// startGatewayConfig writes cfg to a file and starts llmgate with -config FILE.
func startGatewayConfig(t *testing.T, cfg string, env []string) *gwProc {
	t.Helper()
	return startGateway(t, env, "-config", writeConfig(t, cfg))
}

// writeConfig writes a config file into the test's temp dir and returns its path.
func writeConfig(t *testing.T, cfg string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "llmgate.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// gatewayConfig returns a config with one backend, "sim" at simURL, serving both shared model
// names on free loopback ports. extra is YAML appended at the top level.
func gatewayConfig(simURL, extra string) string {
	return gatewayConfigWith(simURL, "", extra)
}

// gatewayConfigWith is gatewayConfig with modelKeys (lines indented for a model's keys)
// added to each of the two models.
func gatewayConfigWith(simURL, modelKeys, extra string) string {
	return fmt.Sprintf(`listen: "127.0.0.1:0"
admin_listen: "127.0.0.1:0"
backends:
  - name: sim
    url: %q
models:
  - name: %s
    backends: [sim]
%s  - name: %s
    backends: [sim]
%s`, simURL, simModel, modelKeys, simSmall, modelKeys) + extra
}

// startSharedGateway starts a gateway of t's own in front of the shared llmsim.
func startSharedGateway(t *testing.T, extra string) *gwProc {
	t.Helper()
	return startGatewayConfig(t, gatewayConfig(suite.sim.url, extra), nil)
}
