// Command llmgate is an OpenAI-compatible gateway for self-hosted inference servers.
// See the README for its flags and config.
package main

import (
	"context"
	"errors"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"github.com/llmgate/llmgate/gateway"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	context.AfterFunc(ctx, stop) // after the first signal a second one kills the process at once
	err := gateway.Main(ctx, os.Args[1:], os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, gateway.ErrInvalidConfig):
		os.Exit(1) // Main has listed the problems
	default:
		os.Stderr.WriteString("llmgate: " + err.Error() + "\n")
		os.Exit(1)
	}
}
