package sim

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// job is one request as the engine runs it.
type job struct {
	model        string
	promptTokens int
	length       int          // tokens per choice
	finish       string       // finish reason once length tokens are out
	sources      []wordSource // one per choice; none for embeddings
	ov           overrides
	arrived      time.Time // when the handler got the request; TTFT counts from here
}

// sink receives a job's output and writes it to the client, streamed or at the end.
type sink interface {
	// start is called before the job waits for a slot; u has no completion tokens yet.
	start(u *usage) error
	// token delivers one generated token of choice; u is the running total.
	token(choice int, text string, u *usage) error
	// malformed delivers the invalid event of X-Sim-Fail: malformed.
	malformed() error
	// finish ends a completed job; u is the final usage.
	finish(reason string, u *usage) error
	// fail ends a job with the error of X-Sim-Fail: error-event-after=N.
	fail() error
}

// execute runs j, writing to out, accounts for its outcome, and aborts the connection when
// an injected fault asks for it or the request was cancelled (client gone or shutdown).
func (s *Server) execute(ctx context.Context, j *job, out sink) {
	o := s.run(ctx, j, out)
	s.eng.record(o)
	if o == outcomeCancelled {
		s.met.models[j.model].success[finishAbort].Inc()
	}
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.DebugContext(ctx, "request done", slog.String("model", j.model),
			slog.String("outcome", o.String()), slog.Int("prompt_tokens", j.promptTokens),
			slog.Duration("duration", time.Since(j.arrived)))
	}
	if o == outcomeAborted || o == outcomeCancelled {
		// Cut the connection with no terminator, as a crashed server would: a stream cut
		// at shutdown must not look complete, and a client that left has no use for it.
		panic(http.ErrAbortHandler)
	}
}

// run paces j through the engine: wait for a slot, prefill, then one token per choice per
// step, with the faults j asks for.
func (s *Server) run(ctx context.Context, j *job, out sink) outcome {
	mm := s.met.models[j.model]
	if out.start(newUsage(j.promptTokens, 0)) != nil {
		return outcomeCancelled
	}
	sq, err := s.eng.admit(ctx, j.model)
	if err != nil {
		return outcomeCancelled
	}
	defer sq.release()
	sq.hold(j.promptTokens)

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	if !sleep(ctx, timer, j.ov.ttft) {
		return outcomeCancelled
	}
	mm.prompt.Add(float64(j.promptTokens))

	generated := 0
	var last time.Time
	for step := range j.length {
		if step > 0 && !sleep(ctx, timer, s.eng.itl(j.ov.itl)) {
			return outcomeCancelled
		}
		now := time.Now()
		if step == 0 {
			mm.ttft.Observe(now.Sub(j.arrived).Seconds())
		} else {
			mm.itl.Observe(now.Sub(last).Seconds())
		}
		last = now
		for c := range j.sources {
			if j.ov.fault.atChunk(generated) {
				return inject(ctx, timer, out, j.ov.fault)
			}
			text := j.sources[c].next()
			sq.hold(1)
			mm.generate.Inc()
			generated++
			if out.token(c, text, newUsage(j.promptTokens, generated)) != nil {
				return outcomeCancelled
			}
			if generated == 1 && j.ov.fault.kind == faultMalformed && out.malformed() != nil {
				return outcomeCancelled
			}
		}
	}
	if j.ov.fault.atChunk(generated) {
		return inject(ctx, timer, out, j.ov.fault)
	}
	if out.finish(j.finish, newUsage(j.promptTokens, generated)) != nil {
		return outcomeCancelled
	}
	mm.e2e.Observe(time.Since(j.arrived).Seconds())
	mm.success[j.finish].Inc()
	return outcomeCompleted
}

// inject carries out a fault that fires after some content chunks.
func inject(ctx context.Context, timer *time.Timer, out sink, f fault) outcome {
	switch f.kind {
	case faultStall:
		if !sleep(ctx, timer, stallTimeout) {
			return outcomeCancelled
		}
		return outcomeAborted
	case faultErrorEvent:
		if out.fail() != nil {
			return outcomeCancelled
		}
		return outcomeFailed
	default: // faultDisconnect
		return outcomeAborted
	}
}

// sleep waits d on timer and reports whether it ran out before ctx was done.
func sleep(ctx context.Context, timer *time.Timer, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer.Reset(d)
	select {
	case <-ctx.Done():
		timer.Stop()
		return false
	case <-timer.C:
		return true
	}
}
