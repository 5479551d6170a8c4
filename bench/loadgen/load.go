package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
)

// Modes, as printed in the table.
const (
	modeNonStream = "non-stream"
	modeStream    = "stream"
)

// benchModel is the model llmsim serves and every request names.
const benchModel = "sim-model"

// httpDoer is the part of *http.Client that a load uses.
type httpDoer interface {
	Do(*http.Request) (*http.Response, error)
}

// newClient returns the client shared by every request of a run: one transport with a large
// idle pool, so that after the warm-up no request dials.
func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil, // loopback only, never through HTTP_PROXY
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 4096,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}}
}

// chatBody is the request every run sends: a short system and user prompt.
func chatBody(maxTokens int, stream bool) []byte {
	return fmt.Appendf(nil, `{"model":%q,"messages":[`+
		`{"role":"system","content":"You are a concise assistant. Answer in plain text."},`+
		`{"role":"user","content":"Summarise the trade-offs of open-loop load testing in two sentences."}],`+
		`"max_tokens":%d,"temperature":0.7,"stream":%t}`, benchModel, maxTokens, stream)
}

// sample is the outcome of one scheduled request.
type sample struct {
	lag   time.Duration // how late the request actually started after its scheduled time
	total time.Duration // from the scheduled start to the last byte of the answer
	ttft  time.Duration // streams: from the scheduled start to the first content delta
	end   time.Time
	err   error
}

// runLoad sends rate × d requests of mode to base, open loop, and returns their samples in
// schedule order. Its error is only a cancelled ctx; failed requests are samples with err set.
func runLoad(ctx context.Context, client httpDoer, cfg config, base, mode string, d time.Duration) ([]sample, error) {
	n := max(int(cfg.rate*d.Seconds()), 1)
	interval := time.Duration(float64(time.Second) / cfg.rate)
	stream := mode == modeStream
	body := chatBody(cfg.maxTokens, stream)
	url := base + "/v1/chat/completions"
	samples := make([]sample, n)
	start := time.Now().Add(10 * time.Millisecond)
	openLoop(ctx, start, interval, n, func(i int, scheduled time.Time) {
		rctx, cancel := context.WithTimeout(ctx, cfg.timeout)
		defer cancel()
		samples[i] = doRequest(rctx, client, url, body, stream, cfg.maxTokens, scheduled)
	})
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("run load: %w", context.Cause(ctx))
	}
	return samples, nil
}

// openLoop calls do n times, the i-th at start + i×interval, each in its own goroutine,
// whether or not earlier calls have returned: a slow target gets more requests in flight, not
// fewer requests. It returns after every call it started has returned; once ctx is done it
// starts no more.
func openLoop(ctx context.Context, start time.Time, interval time.Duration, n int, do func(i int, scheduled time.Time)) {
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			t.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		} else if ctx.Err() != nil {
			return
		}
		wg.Go(func() { do(i, at) })
	}
}

// doRequest sends one chat request and reads the whole answer, checking that it holds want
// generated tokens.
func doRequest(ctx context.Context, client httpDoer, url string, body []byte, stream bool, want int, scheduled time.Time) sample {
	s := sample{lag: time.Since(scheduled)}
	s.err = func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("build request: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("send: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			return fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b))
		}
		if stream {
			var first time.Time
			first, err = readStream(resp.Body, want)
			if !first.IsZero() {
				s.ttft = first.Sub(scheduled)
			}
			return err
		}
		return readAnswer(resp.Body, want)
	}()
	s.end = time.Now()
	s.total = s.end.Sub(scheduled)
	return s
}

// maxLine bounds one SSE line of an answer.
const maxLine = 64 << 10

// readStream reads an SSE chat stream line by line as it arrives and returns when the first
// content delta was read. It fails unless the stream holds want content deltas and ends with
// data: [DONE].
func readStream(r io.Reader, want int) (first time.Time, err error) {
	br := bufio.NewReaderSize(r, maxLine)
	deltas, done := 0, false
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return first, fmt.Errorf("read stream: line longer than %d bytes", maxLine)
		}
		if data, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r\n"), []byte("data:")); ok {
			data = bytes.TrimLeft(data, " ")
			switch {
			case done:
				return first, errors.New("read stream: data after [DONE]")
			case string(data) == "[DONE]":
				done = true
			case gjson.GetBytes(data, "error").Exists():
				return first, fmt.Errorf("read stream: in-band error %s", data)
			case gjson.GetBytes(data, "choices.0.delta.content").String() != "":
				if deltas == 0 {
					first = time.Now()
				}
				deltas++
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return first, fmt.Errorf("read stream after %d deltas: %w", deltas, err)
		}
	}
	switch {
	case !done:
		return first, fmt.Errorf("read stream: ended after %d deltas without [DONE]", deltas)
	case deltas != want:
		return first, fmt.Errorf("read stream: %d content deltas, want %d", deltas, want)
	}
	return first, nil
}

// readAnswer reads a non-streaming chat answer and checks that it reports want completion
// tokens and carries content.
func readAnswer(r io.Reader, want int) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if strings.TrimSpace(gjson.GetBytes(b, "choices.0.message.content").String()) == "" {
		return fmt.Errorf("read answer: no content in %.200s", b)
	}
	if got := gjson.GetBytes(b, "usage.completion_tokens").Int(); got != int64(want) {
		return fmt.Errorf("read answer: usage.completion_tokens = %d, want %d", got, want)
	}
	return nil
}
