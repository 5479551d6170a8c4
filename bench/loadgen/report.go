package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

var nan = math.NaN()

// result sums up one counted run of one target and mode.
type result struct {
	target, mode string
	sent, errors int
	// wall is from the first scheduled start to the last answer's end.
	wall               time.Duration
	p50, p99           time.Duration // total latency of successful requests
	ttft50, ttft99     time.Duration // streams only
	lag99              time.Duration // how late the generator started requests, p99
	cpu, simCPU        float64       // CPU seconds of the target process, and of llmsim
	firstErr           string
	stream, haveTiming bool
}

// rate is the achieved rate: successful answers per second of wall time.
func (r result) rate() float64 {
	if r.wall <= 0 {
		return 0
	}
	return float64(r.sent-r.errors) / r.wall.Seconds()
}

// cpuPer1k is the target's CPU seconds per 1000 requests sent.
func (r result) cpuPer1k() float64 {
	if r.sent == 0 {
		return nan
	}
	return r.cpu / float64(r.sent) * 1000
}

func anyErrors(results []result) bool {
	for _, r := range results {
		if r.errors > 0 {
			return true
		}
	}
	return false
}

// summarize turns samples, in schedule order, into a result. Latency percentiles count only
// successful requests; the generator's start lag counts every request.
func summarize(target, mode string, samples []sample) result {
	r := result{target: target, mode: mode, sent: len(samples), stream: mode == modeStream}
	var total, ttft, lag []time.Duration
	var first, last time.Time
	for _, s := range samples {
		if first.IsZero() || s.end.Add(-s.total).Before(first) {
			first = s.end.Add(-s.total) // the scheduled start
		}
		if s.end.After(last) {
			last = s.end
		}
		lag = append(lag, s.lag)
		if s.err != nil {
			if r.errors == 0 {
				r.firstErr = s.err.Error()
			}
			r.errors++
			continue
		}
		total = append(total, s.total)
		if s.ttft > 0 {
			ttft = append(ttft, s.ttft)
		}
	}
	r.wall = last.Sub(first)
	r.haveTiming = len(total) > 0
	r.p50, r.p99 = percentile(total, 0.50), percentile(total, 0.99)
	r.ttft50, r.ttft99 = percentile(ttft, 0.50), percentile(ttft, 0.99)
	r.lag99 = percentile(lag, 0.99)
	return r
}

// percentile returns the nearest-rank p-quantile of ds, 0 for none. It sorts ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(math.Ceil(p*float64(len(ds)))) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// runEnv is what the table's heading reports about the run.
type runEnv struct {
	cfg       config
	cpus      int
	goVersion string
	self      float64 // loadgen's own CPU seconds over the whole run
	// loadBefore and loadAfter are /proc/loadavg's 1-minute figure before and after the runs:
	// other work on the machine shows there.
	loadBefore, loadAfter string
}

func (e runEnv) heading() string {
	c := e.cfg
	return fmt.Sprintf("rate %g req/s for %s per run (warm-up %s), max_tokens %d, llmsim -ttft %s -itl %s "+
		"-max-num-seqs %d; %d CPUs, %s; loadgen itself used %.1f CPU s; load average %s before, %s after",
		c.rate, c.duration, c.warmup, c.maxTokens, c.ttft, c.itl, c.maxNumSeqs, e.cpus, e.goVersion, e.self,
		e.loadBefore, e.loadAfter)
}

var columns = []string{"target", "mode", "req/s", "p50 ms", "p99 ms", "+p50 ms", "+p99 ms",
	"TTFT p50 ms", "TTFT p99 ms", "errors", "CPU s", "CPU s/1k req", "llmsim CPU s", "start lag p99 ms"}

// rows formats results, the added latency taken against the first direct run of the same
// mode. A later direct run (-targets direct,proxy,llmgate,direct) shows its own difference
// from the first: the run-to-run noise.
func rows(results []result) [][]string {
	direct := map[string]int{}
	for i, r := range results {
		if _, seen := direct[r.mode]; !seen && r.target == targetDirect {
			direct[r.mode] = i
		}
	}
	var out [][]string
	for i, r := range results {
		ref, haveDirect := direct[r.mode]
		var d result
		if haveDirect {
			d = results[ref]
		}
		added := func(v, base time.Duration) string {
			if !haveDirect || ref == i || !r.haveTiming || !d.haveTiming {
				return "–"
			}
			return fmt.Sprintf("%+.2f", ms(v-base))
		}
		timing := func(v time.Duration) string {
			if !r.haveTiming {
				return "–"
			}
			return fmt.Sprintf("%.2f", ms(v))
		}
		ttft := func(v time.Duration) string {
			if !r.stream || v == 0 {
				return "–"
			}
			return fmt.Sprintf("%.2f", ms(v))
		}
		out = append(out, []string{
			r.target, r.mode,
			fmt.Sprintf("%.1f", r.rate()),
			timing(r.p50), timing(r.p99),
			added(r.p50, d.p50), added(r.p99, d.p99),
			ttft(r.ttft50), ttft(r.ttft99),
			strconv.Itoa(r.errors),
			fmt.Sprintf("%.2f", r.cpu),
			fmt.Sprintf("%.3f", r.cpuPer1k()),
			fmt.Sprintf("%.2f", r.simCPU),
			fmt.Sprintf("%.2f", ms(r.lag99)),
		})
	}
	return out
}

// writeText prints the table with aligned columns.
func writeText(w io.Writer, env runEnv, results []result) {
	fmt.Fprintln(w, env.heading())
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(columns, "\t")+"\t")
	for _, row := range rows(results) {
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	_ = tw.Flush()
}

// writeMarkdown prints the same table in Markdown, to paste into docs.
func writeMarkdown(w io.Writer, env runEnv, results []result) {
	fmt.Fprintf(w, "_%s_\n\n", env.heading())
	fmt.Fprintf(w, "| %s |\n", strings.Join(columns, " | "))
	align := make([]string, len(columns))
	for i := range align {
		align[i] = "---:"
		if i < 2 {
			align[i] = "---"
		}
	}
	fmt.Fprintf(w, "|%s|\n", strings.Join(align, "|"))
	for _, row := range rows(results) {
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
}
