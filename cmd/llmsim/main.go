// Command llmsim is a simulated vLLM-like inference server for tests, demos and load tests
// without GPUs. Run llmsim -help for its flags, capacity model and fault-injection headers.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/llmgate/llmgate/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := sim.Main(ctx, os.Args[1:], os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	default:
		fmt.Fprintf(os.Stderr, "llmsim: %v\n", err)
		os.Exit(1)
	}
}
