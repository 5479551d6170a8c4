package sse

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// fuzzMaxEvent is the small event limit of the fuzz target's second configuration, so that
// ErrEventTooLarge and buffer growth are reached often.
const fuzzMaxEvent = 64

func FuzzDecoder(f *testing.F) {
	for _, seed := range []string{
		"data: {\"a\":1}\r\n\r\n: ping\n\ndata: [DONE]\n\n",
		"data: a\n\n", "data: a\r\n\r\n", "data: a\r\r", "data: a\r\n\rdata: b\n\r\n",
		"data: a\r", "data: a\r\n\r", "\r\r\n\n\r",
		": ping\n\n", ":\r\n\r\n", ": a\ndata: b\n: c\n\n",
		"data: a\ndata: b\ndata:c\ndata\n\n",
		"event: delta\nid: 1\nretry: 5\ndata: x\n\n", "id: a\x00b\n\n", "event\nid\n\n",
		"\xEF\xBB\xBFdata: a\n\n", "\xEF\xBB", "\xEF\xBB\xBF\xEF\xBB\xBF\n", "data: a\n\n\xEF\xBB\xBFdata: b\n\n",
		"data: a\n\ndata: b", "data: a\ndata: b\n", ": cut",
		"data:[DONE]\n\n", "data: " + strings.Repeat("x", defaultBufferSize+1000) + "\n\n",
		"data: " + strings.Repeat("y", fuzzMaxEvent-8) + "\r\n\r\n",
		"data: " + strings.Repeat("z", fuzzMaxEvent-7) + "\r\r\n",
		vllmChunk + vllmChunk + "data: [DONE]\n\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, limits := range []struct{ buf, max int }{{defaultBufferSize, defaultMaxEventSize}, {1, fuzzMaxEvent}} {
			want, wantErr := referenceDecode(in, limits.max)
			for _, rc := range []readerCase{
				{"whole", func(in []byte) io.Reader { return bytes.NewReader(in) }},
				{"one-byte", func(in []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(in)) }},
				{"half", func(in []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(in)) }},
				{"split-middle", func(in []byte) io.Reader { return splitAt(in, len(in)/2) }},
			} {
				got, err := decodeAll(NewDecoderSize(rc.make(in), limits.buf, limits.max))
				if !errors.Is(err, wantErr) || !reflect.DeepEqual(got, want) {
					t.Fatalf("decode %q (%s, max %d):\n got %v, %v\nwant %v, %v",
						in, rc.name, limits.max, got, err, want, wantErr)
				}
			}
			checkRawCoverage(t, in, want, errors.Is(wantErr, io.EOF))
		}
		checkAppendRoundTrip(t, in)
	})
}

// checkRawCoverage checks that the events' Raw bytes appear in order in the input, separated
// only by skipped blank lines (and a leading BOM), so that they never add up to more bytes
// than the input. When the whole input was decoded, nothing but blank lines may remain.
func checkRawCoverage(t *testing.T, in []byte, evs []evt, complete bool) {
	t.Helper()
	rest := bytes.TrimPrefix(in, []byte(bom))
	total := 0
	for i, e := range evs {
		rest = bytes.TrimLeft(rest, "\r\n")
		if !bytes.HasPrefix(rest, []byte(e.Raw)) {
			t.Fatalf("decode %q: event %d Raw %q is not next in the input %q", in, i, e.Raw, rest)
		}
		rest = rest[len(e.Raw):]
		total += len(e.Raw)
	}
	if total > len(in) {
		t.Fatalf("decode %q: Raw bytes add up to %d, more than the %d input bytes", in, total, len(in))
	}
	if complete && len(bytes.TrimLeft(rest, "\r\n")) != 0 {
		t.Fatalf("decode %q: bytes %q after the last event are in no Raw", in, rest)
	}
}

// checkAppendRoundTrip checks that AppendData encodes in, without its CR bytes, as one event
// whose decoded Data is that input again.
func checkAppendRoundTrip(t *testing.T, in []byte) {
	t.Helper()
	p := bytes.ReplaceAll(in, []byte("\r"), nil)
	enc := AppendData(nil, p)
	got, err := decodeAll(NewDecoder(bytes.NewReader(enc)))
	want := []evt{dataEvt(string(enc), string(p))}
	if !errors.Is(err, io.EOF) || !reflect.DeepEqual(got, want) {
		t.Fatalf("decode AppendData(nil, %q) = %v, %v; want %v, io.EOF", p, got, err, want)
	}
}

// referenceDecode is a deliberately simple decoder of a whole input, written apart from the
// Decoder, as the fuzz target's oracle. It returns the events and the final error, io.EOF or
// ErrEventTooLarge.
func referenceDecode(in []byte, maxEvent int) ([]evt, error) {
	in = bytes.TrimPrefix(in, []byte(bom))
	var (
		out     []evt
		cur     evt
		datas   []string
		started bool
		evStart int
	)
	emit := func(end int) error {
		if end-evStart > maxEvent {
			return ErrEventTooLarge
		}
		cur.Raw = string(in[evStart:end])
		if datas != nil {
			cur.Data = str(strings.Join(datas, "\n"))
		}
		out = append(out, cur)
		cur, datas, started = evt{}, nil, false
		return nil
	}
	for i := 0; i < len(in); {
		j := i
		for j < len(in) && in[j] != '\r' && in[j] != '\n' {
			j++
		}
		next := j
		if j < len(in) {
			next++
			if in[j] == '\r' && next < len(in) && in[next] == '\n' {
				next++
			}
		}
		line := string(in[i:j])
		switch {
		case line == "" && started:
			if err := emit(next); err != nil {
				return out, err
			}
		case line == "":
		default:
			if !started {
				started, evStart, cur.Comment = true, i, true
			}
			if line[0] != ':' {
				cur.Comment = false
				name, value, found := strings.Cut(line, ":")
				if found {
					value = strings.TrimPrefix(value, " ")
				}
				switch {
				case name == "data":
					datas = append(datas, value)
				case name == "event":
					cur.Name = str(value)
				case name == "id" && !strings.Contains(value, "\x00"):
					cur.ID = str(value)
				}
			}
		}
		i = next
	}
	if started {
		if err := emit(len(in)); err != nil {
			return out, err
		}
	}
	return out, io.EOF
}
