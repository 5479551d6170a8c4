// Command loadgen is llmgate's open-loop load benchmark, what `make bench` runs.
//
// In one run it builds llmgate and llmsim (or takes -llmgate and -llmsim binaries), then starts
// three targets on 127.0.0.1 with ephemeral ports, each in its own process:
//
//   - direct: llmsim, the simulated vLLM backend, with small non-zero -ttft and -itl;
//   - proxy: a plain net/http/httputil.ReverseProxy in front of llmsim (loadgen re-executes
//     itself with -serve-proxy), the baseline any proxy hop costs;
//   - llmgate: the gateway with -backend pointing at llmsim, metrics, token counting and the
//     JSON access log on, as by default.
//
// For each mode (non-streaming and streaming chat completions) and each target it runs the
// same schedule: requests start at a fixed rate, each at its scheduled time whether or not the
// earlier ones have finished, and latency is measured from the scheduled start, so a slow
// target cannot hide its queueing by slowing the generator (no coordinated omission). A warm-up
// at the same rate comes first and is not counted. It then prints one table as aligned text and
// as Markdown: achieved rate, total latency p50 and p99, the latency added over direct, time to
// the first content chunk for streams, errors, and the CPU seconds each target process used
// during the run, read from /proc/PID/stat.
//
// Every count and duration is bounded, everything listens on loopback only, and the run stops
// by itself; the child processes are stopped on the way out, also after an interrupt.
//
// Usage:
//
//	go run ./bench/loadgen [-rate 200] [-duration 10s] [-warmup 2s] [-max-tokens 32] [-ttft 20ms] [-itl 2ms]
//
// Concurrency: each scheduled request runs in its own goroutine, which the schedule loop starts
// and waits for before it returns; results go to a slot per request, so no lock is needed.
package main
