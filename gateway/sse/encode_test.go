package sse

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

func TestAppendData(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    string
		want string
	}{
		{"empty", "", "data: \n\n"},
		{"one line", `{"a":1}`, "data: {\"a\":1}\n\n"},
		{"done", "[DONE]", "data: [DONE]\n\n"},
		{"two lines", "a\nb", "data: a\ndata: b\n\n"},
		{"trailing newline", "a\n", "data: a\ndata: \n\n"},
		{"only a newline", "\n", "data: \ndata: \n\n"},
		{"blank line inside", "a\n\nb", "data: a\ndata: \ndata: b\n\n"},
		{"leading space kept", " x", "data:  x\n\n"},
		{"colon and comment-like text", ": not a comment", "data: : not a comment\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := AppendData([]byte("prefix"), []byte(tt.p))
			if string(got) != "prefix"+tt.want {
				t.Fatalf("AppendData(%q, %q) = %q, want %q", "prefix", tt.p, got, "prefix"+tt.want)
			}
			evs, err := decodeAll(NewDecoder(bytes.NewReader(got[len("prefix"):])))
			want := []evt{dataEvt(tt.want, tt.p)}
			if !errors.Is(err, io.EOF) || !reflect.DeepEqual(evs, want) {
				t.Errorf("decode AppendData(nil, %q) = %v, %v; want %v, io.EOF", tt.p, evs, err, want)
			}
		})
	}
}

func TestAppendDataNoAllocWithCapacity(t *testing.T) {
	p := []byte("line one\nline two\nline three")
	dst := make([]byte, 0, 128)
	allocs := testing.AllocsPerRun(100, func() { dst = AppendData(dst[:0], p) })
	if allocs != 0 {
		t.Errorf("AppendData into a buffer with room: %v allocs per call, want 0", allocs)
	}
}

func TestIsDone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bool
	}{
		{"[DONE]", true},
		{" [DONE] ", true},
		{"\t[DONE]\r\n", true},
		{"[DONE]\n", true},
		{"", false},
		{"   ", false},
		{"[done]", false},
		{"DONE", false},
		{"[DONE", false},
		{"[DONE]x", false},
		{"\u00a0[DONE]", false},
		{`{"choices":[]}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			if got := IsDone([]byte(tt.in)); got != tt.want {
				t.Errorf("IsDone(%q) = %t, want %t", tt.in, got, tt.want)
			}
		})
	}
}

func TestDecodedDone(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"data:[DONE]\n\n", "data: [DONE]\r\n\r\n", "data: [DONE]"} {
		ev, err := NewDecoder(bytes.NewReader([]byte(in))).Next()
		if err != nil || !IsDone(ev.Data) {
			t.Errorf("decode %q: data %q, error %v; want IsDone true, nil", in, ev.Data, err)
		}
	}
}
