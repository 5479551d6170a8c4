package test

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Model names the shared llmsim serves.
const (
	simModel = "sim-model"
	simSmall = "sim-small"
)

// suite is what TestMain sets up once, before any test runs. Tests only read it.
var suite struct {
	binDir string   // holds the llmgate and llmsim binaries
	sim    *simProc // a shared llmsim serving simModel and simSmall
}

// TestMain builds llmgate and llmsim once (with -race when the tests run with it), starts the
// shared llmsim, runs the tests, checks for leaked goroutines, then stops llmsim and removes
// the binaries.
func TestMain(m *testing.M) {
	flag.Parse()
	if err := setup(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e setup: %v\n", err)
		if err := teardown(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e teardown: %v\n", err)
		}
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if err := teardown(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e teardown: %v\n", err)
			code = max(code, 1)
		}
		os.Exit(code)
	}))
}

func setup() error {
	dir, err := os.MkdirTemp("", "llmgate-e2e-")
	if err != nil {
		return fmt.Errorf("make bin dir: %w", err)
	}
	suite.binDir = dir
	if err := buildBinaries(dir); err != nil {
		return err
	}
	sim, err := newSimProc(filepath.Join(dir, "shared-llmsim.log"), false,
		"-model", simModel, "-model", simSmall, "-ttft", "5ms", "-itl", "2ms")
	if err != nil {
		return fmt.Errorf("start shared llmsim: %w", err)
	}
	suite.sim = sim
	return nil
}

// teardown stops the shared llmsim, reports a data race it logged, and removes the binaries.
func teardown() error {
	var errs []error
	if suite.sim != nil {
		suite.sim.stop()
		if race := raceReport(suite.sim.logs()); race != "" {
			errs = append(errs, fmt.Errorf("shared llmsim reported a data race:\n%s", race))
		}
	}
	if suite.binDir != "" {
		if err := os.RemoveAll(suite.binDir); err != nil {
			errs = append(errs, fmt.Errorf("remove bin dir: %w", err))
		}
	}
	return errors.Join(errs...)
}

// buildBinaries builds cmd/llmgate and cmd/llmsim into dir from the module root, which is the
// parent of this package's directory (go test runs tests in the package directory).
func buildBinaries(dir string) error {
	root, err := filepath.Abs("..")
	if err != nil {
		return fmt.Errorf("find module root: %w", err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return fmt.Errorf("find module root: %w", err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("find go command: %w", err)
	}
	args := []string{"build"}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "-o", dir+string(filepath.Separator), "./cmd/llmgate", "./cmd/llmsim")
	cmd := exec.Command(goBin, args...)
	cmd.Dir = root
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "e2e: built llmgate and llmsim (race=%v) in %s\n", raceEnabled, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// bin returns the path of a built binary.
func bin(name string) string { return filepath.Join(suite.binDir, name) }
