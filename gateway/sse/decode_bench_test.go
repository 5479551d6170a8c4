package sse

import (
	"bytes"
	"strings"
	"testing"
)

// vllmChunk is a typical event of a vLLM chat completion stream.
const vllmChunk = `data: {"id":"chatcmpl-8f2a6c1e4b3d4c5e9a7b01d2","object":"chat.completion.chunk",` +
	`"created":1732330000,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[{"index":0,` +
	`"delta":{"content":" hello"},"logprobs":null,"finish_reason":null}]}` + "\n\n"

// cyclicReader returns the bytes of stream over and over, at most chunk bytes per Read (all
// that fit when chunk is 0).
type cyclicReader struct {
	stream []byte
	off    int
	chunk  int
}

func (r *cyclicReader) Read(p []byte) (int, error) {
	if r.chunk > 0 && len(p) > r.chunk {
		p = p[:r.chunk]
	}
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.stream[r.off:])
		n += c
		r.off = (r.off + c) % len(r.stream)
	}
	return n, nil
}

// benchStreams are the streams the decoder benchmarks read, each made of equal events.
var benchStreams = []struct {
	name  string
	event string
	chunk int // bytes per Read; 0 fills the buffer
}{
	{"vllm-bulk", vllmChunk, 0},
	{"vllm-event-per-read", vllmChunk, len(vllmChunk)},
	{"vllm-64B-reads", vllmChunk, 64},
	{"crlf-bulk", strings.ReplaceAll(vllmChunk, "\n", "\r\n"), 0},
	{"multiline-bulk", "event: delta\nid: 1\ndata: {\"a\":1,\ndata: \"b\":2}\n\n", 0},
}

func BenchmarkDecoderNext(b *testing.B) {
	for _, bs := range benchStreams {
		b.Run(bs.name, func(b *testing.B) {
			stream := []byte(strings.Repeat(bs.event, 64))
			d := NewDecoder(&cyclicReader{stream: stream, chunk: bs.chunk})
			b.SetBytes(int64(len(bs.event)))
			b.ReportAllocs()
			for b.Loop() {
				ev, err := d.Next()
				if err != nil || len(ev.Raw) != len(bs.event) {
					b.Fatalf("Next = %d raw bytes, %v; want %d, nil", len(ev.Raw), err, len(bs.event))
				}
			}
		})
	}
}

func TestDecoderNextNoAllocs(t *testing.T) {
	for _, bs := range benchStreams {
		d := NewDecoder(&cyclicReader{stream: []byte(strings.Repeat(bs.event, 64)), chunk: bs.chunk})
		allocs := testing.AllocsPerRun(1000, func() {
			if _, err := d.Next(); err != nil {
				t.Fatalf("Next on %s: %v", bs.name, err)
			}
		})
		if allocs != 0 {
			t.Errorf("Next on %s: %v allocs per event, want 0", bs.name, allocs)
		}
	}
}

func TestDecoderReusesGrownBuffer(t *testing.T) {
	long := "data: " + strings.Repeat("y", 1<<20) + "\n\n"
	d := NewDecoder(&cyclicReader{stream: []byte(long + strings.Repeat(vllmChunk, 64))})
	if ev, err := d.Next(); err != nil || len(ev.Raw) != len(long) {
		t.Fatalf("Next on a 1 MiB event = %d raw bytes, %v; want %d, nil", len(ev.Raw), err, len(long))
	}
	grown := len(d.buf)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := d.Next(); err != nil {
			t.Fatalf("Next after a 1 MiB event: %v", err)
		}
	})
	// The cycle brings the 1 MiB event back once per run of small ones; it fits the buffer.
	if allocs != 0 || len(d.buf) != grown {
		t.Errorf("after a 1 MiB event: %v allocs per event and buffer %d -> %d bytes; want 0 and no change",
			allocs, grown, len(d.buf))
	}
}

func BenchmarkAppendData(b *testing.B) {
	for _, bc := range []struct {
		name string
		p    []byte
	}{
		{"vllm-chunk", []byte(vllmChunk[len("data: ") : len(vllmChunk)-2])},
		{"three-lines", []byte("line one\nline two\nline three")},
		{"done", []byte("[DONE]")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			dst := make([]byte, 0, 1024)
			b.SetBytes(int64(len(bc.p)))
			b.ReportAllocs()
			for b.Loop() {
				dst = AppendData(dst[:0], bc.p)
			}
			if !bytes.HasSuffix(dst, []byte("\n\n")) {
				b.Fatalf("AppendData(%q) = %q, want a terminated event", bc.p, dst)
			}
		})
	}
}
