package sse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// evt is a copy of an Event that outlives the Decoder's buffer. A nil pointer stands for a
// nil slice.
type evt struct {
	Raw     string
	Data    *string
	Name    *string
	ID      *string
	Comment bool
}

func (e evt) String() string {
	opt := func(p *string) string {
		if p == nil {
			return "nil"
		}
		return fmt.Sprintf("%q", *p)
	}
	return fmt.Sprintf("{Raw:%q Data:%s Name:%s ID:%s Comment:%t}",
		e.Raw, opt(e.Data), opt(e.Name), opt(e.ID), e.Comment)
}

// str returns a pointer to s, for evt literals.
func str(s string) *string { return &s }

// dataEvt is the event that carries data d with raw bytes raw.
func dataEvt(raw, d string) evt { return evt{Raw: raw, Data: str(d)} }

// copyEvent copies ev into an evt.
func copyEvent(ev Event) evt {
	opt := func(b []byte) *string {
		if b == nil {
			return nil
		}
		return str(string(b))
	}
	return evt{Raw: string(ev.Raw), Data: opt(ev.Data), Name: opt(ev.Name), ID: opt(ev.ID), Comment: ev.Comment}
}

// decodeAll reads every event from d and returns copies of them with the error that ended
// decoding.
func decodeAll(d *Decoder) ([]evt, error) {
	var out []evt
	for {
		ev, err := d.Next()
		if err != nil {
			return out, err
		}
		out = append(out, copyEvent(ev))
	}
}

// readerCase is one way of delivering a stream to a Decoder.
type readerCase struct {
	name string
	make func(in []byte) io.Reader
}

// splitAt returns a reader whose first read stops at offset k of in.
func splitAt(in []byte, k int) io.Reader {
	return io.MultiReader(bytes.NewReader(in[:k]), bytes.NewReader(in[k:]))
}

// readerCases returns the ways to deliver in: whole, one byte at a time, in halves, with EOF
// on the last data, and split in two at every offset.
func readerCases(in []byte) []readerCase {
	rc := []readerCase{
		{"whole", func(in []byte) io.Reader { return bytes.NewReader(in) }},
		{"one-byte", func(in []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(in)) }},
		{"half", func(in []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(in)) }},
		{"data-err", func(in []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(in)) }},
	}
	for k := 0; k <= len(in); k++ {
		rc = append(rc, readerCase{fmt.Sprintf("split-%d", k), func(in []byte) io.Reader { return splitAt(in, k) }})
	}
	return rc
}

func TestDecoderNext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []evt
	}{
		{"empty", "", nil},
		{"only blank lines", "\n\r\n\r\n\n", nil},
		{"LF", "data: hello\n\n", []evt{dataEvt("data: hello\n\n", "hello")}},
		{"CRLF", "data: hello\r\n\r\n", []evt{dataEvt("data: hello\r\n\r\n", "hello")}},
		{"CR", "data: a\r\rdata: b\r\r", []evt{dataEvt("data: a\r\r", "a"), dataEvt("data: b\r\r", "b")}},
		{"mixed", "data: a\r\n\rdata: b\n\r\ndata: c\r\ndata: d\rdata: e\n\n", []evt{
			dataEvt("data: a\r\n\r", "a"),
			dataEvt("data: b\n\r\n", "b"),
			dataEvt("data: c\r\ndata: d\rdata: e\n\n", "c\nd\ne"),
		}},
		{"CR then CRLF", "data: a\r\r\n", []evt{dataEvt("data: a\r\r\n", "a")}},
		{"LF CR is two endings", "data: a\n\rdata: b\n\n", []evt{dataEvt("data: a\n\r", "a"), dataEvt("data: b\n\n", "b")}},
		{"several events", "data: 1\n\ndata: 2\n\ndata: [DONE]\n\n", []evt{
			dataEvt("data: 1\n\n", "1"), dataEvt("data: 2\n\n", "2"), dataEvt("data: [DONE]\n\n", "[DONE]"),
		}},
		{"blank lines between and around events", "\n\r\n\rdata: a\n\n\n\r\ndata: b\n\n\n", []evt{
			dataEvt("data: a\n\n", "a"), dataEvt("data: b\n\n", "b"),
		}},
		{"comment", ": ping\n\n", []evt{{Raw: ": ping\n\n", Comment: true}}},
		{"empty comment", ":\n\n", []evt{{Raw: ":\n\n", Comment: true}}},
		{"comments only", ": a\r\n:b\r\n\r\n", []evt{{Raw: ": a\r\n:b\r\n\r\n", Comment: true}}},
		{"comment and data", ": note\ndata: x\n: more\n\n", []evt{dataEvt(": note\ndata: x\n: more\n\n", "x")}},
		{"multi-line data", "data: a\ndata: b\ndata: c\n\n", []evt{dataEvt("data: a\ndata: b\ndata: c\n\n", "a\nb\nc")}},
		{"empty data lines", "data\ndata:\ndata: \n\n", []evt{dataEvt("data\ndata:\ndata: \n\n", "\n\n")}},
		{"single empty data", "data\n\n", []evt{dataEvt("data\n\n", "")}},
		{"no space after colon", "data:[DONE]\n\n", []evt{dataEvt("data:[DONE]\n\n", "[DONE]")}},
		{"only one space stripped", "data:  x \n\n", []evt{dataEvt("data:  x \n\n", " x ")}},
		{"colon in value", "data: {\"a\":\"b:c\"}\n\n", []evt{dataEvt("data: {\"a\":\"b:c\"}\n\n", `{"a":"b:c"}`)}},
		{"event and id", "event: delta\nid: 42\ndata: {}\n\n", []evt{
			{Raw: "event: delta\nid: 42\ndata: {}\n\n", Data: str("{}"), Name: str("delta"), ID: str("42")},
		}},
		{"last event and id win", "event: a\nid: 1\nevent: b\nid: 2\ndata: x\n\n", []evt{
			{Raw: "event: a\nid: 1\nevent: b\nid: 2\ndata: x\n\n", Data: str("x"), Name: str("b"), ID: str("2")},
		}},
		{"empty event and id", "event\nid:\n\n", []evt{{Raw: "event\nid:\n\n", Name: str(""), ID: str("")}}},
		{"id with NUL ignored", "id: 7\nid: a\x00b\ndata: x\n\n", []evt{
			{Raw: "id: 7\nid: a\x00b\ndata: x\n\n", Data: str("x"), ID: str("7")},
		}},
		{"event without data", "event: ping\n\n", []evt{{Raw: "event: ping\n\n", Name: str("ping")}}},
		{"unknown fields kept in Raw", "retry: 10\nfoo: bar\ndata: x\nDATA: y\n\n", []evt{
			dataEvt("retry: 10\nfoo: bar\ndata: x\nDATA: y\n\n", "x"),
		}},
		{"space before colon is another field", "data : x\n\n", []evt{{Raw: "data : x\n\n"}}},
		{"missing final blank line", "data: a\n\ndata: b\n", []evt{dataEvt("data: a\n\n", "a"), dataEvt("data: b\n", "b")}},
		{"missing final line ending", "data: a\n\ndata: b", []evt{dataEvt("data: a\n\n", "a"), dataEvt("data: b", "b")}},
		{"lone CR at EOF", "data: b\r", []evt{dataEvt("data: b\r", "b")}},
		{"CRLF then lone CR at EOF", "data: a\r\n\r", []evt{dataEvt("data: a\r\n\r", "a")}},
		{"multi-line data cut by EOF", "data: a\ndata: b", []evt{dataEvt("data: a\ndata: b", "a\nb")}},
		{"comment cut by EOF", ": keep", []evt{{Raw: ": keep", Comment: true}}},
		{"BOM", "\xEF\xBB\xBFdata: a\n\n", []evt{dataEvt("data: a\n\n", "a")}},
		{"BOM then blank lines", "\xEF\xBB\xBF\r\n\ndata: a\n\n", []evt{dataEvt("data: a\n\n", "a")}},
		{"BOM only", "\xEF\xBB\xBF", nil},
		{"BOM only at start", "data: a\n\n\xEF\xBB\xBFdata: b\n\n", []evt{
			dataEvt("data: a\n\n", "a"), {Raw: "\xEF\xBB\xBFdata: b\n\n"},
		}},
		{"partial BOM is not skipped", "\xEF\xBBdata: a\n\n", []evt{{Raw: "\xEF\xBBdata: a\n\n"}}},
		{"partial BOM at EOF", "\xEF\xBB", []evt{{Raw: "\xEF\xBB"}}},
		{"two BOMs", "\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\n", []evt{{Raw: "\xEF\xBB\xBFdata: a\n\n"}}},
		{"invalid UTF-8 passes through", "data: \xff\xfe\n\n", []evt{dataEvt("data: \xff\xfe\n\n", "\xff\xfe")}},
		{"vLLM chunk", vllmChunk + vllmChunk + "data: [DONE]\n\n", []evt{
			dataEvt(vllmChunk, strings.TrimSuffix(strings.TrimPrefix(vllmChunk, "data: "), "\n\n")),
			dataEvt(vllmChunk, strings.TrimSuffix(strings.TrimPrefix(vllmChunk, "data: "), "\n\n")),
			dataEvt("data: [DONE]\n\n", "[DONE]"),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := []byte(tt.in)
			for _, rc := range readerCases(in) {
				for _, bufSize := range []int{1, defaultBufferSize} {
					got, err := decodeAll(NewDecoderSize(rc.make(in), bufSize, 0))
					if !errors.Is(err, io.EOF) {
						t.Errorf("decode %q (%s, buffer %d): final error %v, want io.EOF", tt.in, rc.name, bufSize, err)
					}
					if !reflect.DeepEqual(got, tt.want) {
						t.Errorf("decode %q (%s, buffer %d):\n got %v\nwant %v", tt.in, rc.name, bufSize, got, tt.want)
					}
				}
			}
		})
	}
}

func TestDecoderLongLine(t *testing.T) {
	t.Parallel()
	payload := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	in := []byte("data: " + payload + "\r\n\r\ndata: next\n\n")
	for _, rc := range readerCases(in)[:4] {
		t.Run(rc.name, func(t *testing.T) {
			t.Parallel()
			got, err := decodeAll(NewDecoder(rc.make(in)))
			want := []evt{dataEvt("data: "+payload+"\r\n\r\n", payload), dataEvt("data: next\n\n", "next")}
			if !errors.Is(err, io.EOF) {
				t.Errorf("final error %v, want io.EOF", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("decode 1 MiB data line: got %d events, want %d, or their bytes differ", len(got), len(want))
			}
		})
	}
}

func TestDecoderTooLarge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		in       string
		maxEvent int
		want     []evt
		wantErr  error
	}{
		{"fits exactly", "data: 0123456789\n\n", 18, []evt{dataEvt("data: 0123456789\n\n", "0123456789")}, io.EOF},
		{"one byte over", "data: 0123456789\n\n", 17, nil, ErrEventTooLarge},
		{"CR ending fits", "data: 0123456789\r\r", 18, []evt{dataEvt("data: 0123456789\r\r", "0123456789")}, io.EOF},
		{"final LF of CRLF goes over", "data: 0123456789\r\n\r\n", 19, nil, ErrEventTooLarge},
		{"pending CR at the limit", "data: 012345678\r\rdata: b\n\n", 17, []evt{
			dataEvt("data: 012345678\r\r", "012345678"), dataEvt("data: b\n\n", "b"),
		}, io.EOF},
		{"earlier events survive", "data: a\n\ndata: 0123456789\n\ndata: b\n\n", 10, []evt{dataEvt("data: a\n\n", "a")}, ErrEventTooLarge},
		{"skipped blank lines do not count", "\n\n\n\n\n\n\n\n\n\n\n\ndata: a\n\n", 9, []evt{dataEvt("data: a\n\n", "a")}, io.EOF},
		{"BOM does not count", "\xEF\xBB\xBFdata: a\n\n", 9, []evt{dataEvt("data: a\n\n", "a")}, io.EOF},
		{"unterminated event over", "data: 0123456789", 10, nil, ErrEventTooLarge},
		{"unterminated event fits", "data: 0123", 10, []evt{dataEvt("data: 0123", "0123")}, io.EOF},
		{"long line past the buffer", "data: " + strings.Repeat("x", 200) + "\n\n", 100, nil, ErrEventTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := []byte(tt.in)
			for _, rc := range readerCases(in) {
				d := NewDecoderSize(rc.make(in), 1, tt.maxEvent)
				got, err := decodeAll(d)
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("decode %q (%s, max %d): final error %v, want %v", tt.in, rc.name, tt.maxEvent, err, tt.wantErr)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("decode %q (%s, max %d):\n got %v\nwant %v", tt.in, rc.name, tt.maxEvent, got, tt.want)
				}
				if _, again := d.Next(); !errors.Is(again, tt.wantErr) {
					t.Errorf("decode %q (%s): Next after %v = %v, want the same error again", tt.in, rc.name, err, again)
				}
				if len(d.buf) > max(tt.maxEvent+1, minBufferSize) {
					t.Errorf("decode %q (%s): buffer grew to %d bytes, want at most %d", tt.in, rc.name, len(d.buf), tt.maxEvent+1)
				}
			}
		})
	}
}

var errBoom = errors.New("boom")

// countReader returns a fixed count and error from every Read.
type countReader struct {
	n   int
	err error
}

func (r countReader) Read([]byte) (int, error) { return r.n, r.err }

func TestDecoderReadError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		r       io.Reader
		want    []evt
		wantErr error
	}{
		{"complete events come first", io.MultiReader(strings.NewReader("data: a\n\ndata: b\n\n"), iotest.ErrReader(errBoom)),
			[]evt{dataEvt("data: a\n\n", "a"), dataEvt("data: b\n\n", "b")}, errBoom},
		{"partial event is dropped", io.MultiReader(strings.NewReader("data: a\n\ndata: b\n"), iotest.ErrReader(errBoom)),
			[]evt{dataEvt("data: a\n\n", "a")}, errBoom},
		{"pending CR is not a line end", io.MultiReader(strings.NewReader("data: a\r"), iotest.ErrReader(errBoom)),
			nil, errBoom},
		{"timeout", iotest.TimeoutReader(strings.NewReader("data: a\n\n")), []evt{dataEvt("data: a\n\n", "a")}, iotest.ErrTimeout},
		{"no progress", countReader{}, nil, io.ErrNoProgress},
		{"negative count", countReader{n: -1}, nil, errInvalidRead},
		{"count past the buffer", countReader{n: 1 << 30}, nil, errInvalidRead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := NewDecoder(tt.r)
			got, err := decodeAll(d)
			if !errors.Is(err, tt.wantErr) || !strings.HasPrefix(fmt.Sprint(err), "read sse: ") {
				t.Errorf("final error %v, want %q wrapped as \"read sse: %%w\"", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("events:\n got %v\nwant %v", got, tt.want)
			}
			if _, again := d.Next(); again != err { //nolint:errorlint // the very same error value is wanted
				t.Errorf("Next after %v = %v, want the same error again", err, again)
			}
		})
	}
}

func TestDecoderEOFIsSticky(t *testing.T) {
	t.Parallel()
	d := NewDecoder(strings.NewReader("data: a\n"))
	if ev, err := d.Next(); err != nil || string(ev.Data) != "a" {
		t.Fatalf("Next = %v, %v, want data %q", copyEvent(ev), err, "a")
	}
	for i := range 3 {
		if _, err := d.Next(); !errors.Is(err, io.EOF) {
			t.Errorf("call %d after the last event: error %v, want io.EOF", i+1, err)
		}
	}
}

func TestNewDecoderSizeDefaults(t *testing.T) {
	t.Parallel()
	d := NewDecoderSize(strings.NewReader(""), 0, 0)
	if len(d.buf) != defaultBufferSize || d.maxEvent != defaultMaxEventSize {
		t.Errorf("NewDecoderSize(r, 0, 0): buffer %d, max event %d; want %d, %d",
			len(d.buf), d.maxEvent, defaultBufferSize, defaultMaxEventSize)
	}
	d = NewDecoderSize(strings.NewReader(""), 1, -5)
	if len(d.buf) != minBufferSize || d.maxEvent != defaultMaxEventSize {
		t.Errorf("NewDecoderSize(r, 1, -5): buffer %d, max event %d; want %d, %d",
			len(d.buf), d.maxEvent, minBufferSize, defaultMaxEventSize)
	}
}

// TestEventAliasing checks that single-line data is not copied and that the returned slices
// cannot be appended to over the Decoder's buffer.
func TestEventAliasing(t *testing.T) {
	t.Parallel()
	in := "event: e\nid: 1\ndata: x\n\ndata: y\n\n"
	d := NewDecoder(strings.NewReader(in))
	ev, err := d.Next()
	if err != nil {
		t.Fatalf("Next on %q: %v", in, err)
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{"Raw", ev.Raw}, {"Data", ev.Data}, {"Name", ev.Name}, {"ID", ev.ID}} {
		if cap(f.b) != len(f.b) {
			t.Errorf("%s of %q: cap %d, want %d (= len)", f.name, in, cap(f.b), len(f.b))
		}
	}
	rawEnd := &ev.Raw[len(ev.Raw)-1]
	if &ev.Data[0] != &ev.Raw[len("event: e\nid: 1\ndata: ")] || rawEnd != &d.buf[len(ev.Raw)-1] {
		t.Errorf("Data and Raw of %q do not alias the read buffer", in)
	}
}
