package sse

import (
	"bytes"
	"slices"
)

// dataPrefix starts every data line that AppendData writes.
const dataPrefix = "data: "

// AppendData appends to dst one event whose data is p and returns the extended slice: each
// line of p (p split on "\n") as "data: <line>\n", then the blank line "\n". An empty p gives
// "data: \n\n", an event with empty data. The gateway uses it to write events of its own.
//
// A Decoder reading the result returns an event whose Data equals p, provided p holds no CR
// byte: a CR would end a line there. JSON encoders escape CR, so JSON payloads are safe.
// AppendData allocates only when dst lacks the capacity.
func AppendData(dst, p []byte) []byte {
	lines := bytes.Count(p, []byte{'\n'}) + 1
	dst = slices.Grow(dst, len(p)+lines*(len(dataPrefix)+1)+1)
	for {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			break
		}
		dst = append(dst, dataPrefix...)
		dst = append(dst, p[:i+1]...)
		p = p[i+1:]
	}
	dst = append(dst, dataPrefix...)
	dst = append(dst, p...)
	return append(dst, '\n', '\n')
}

// IsDone reports whether data is the "[DONE]" sentinel that ends an OpenAI-style stream,
// ignoring leading and trailing ASCII white space (space, tab, CR, LF, vertical tab and form
// feed).
func IsDone(data []byte) bool {
	for len(data) > 0 && isASCIISpace(data[0]) {
		data = data[1:]
	}
	for len(data) > 0 && isASCIISpace(data[len(data)-1]) {
		data = data[:len(data)-1]
	}
	return string(data) == "[DONE]"
}

// isASCIISpace reports whether c is an ASCII white-space byte.
func isASCIISpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f':
		return true
	}
	return false
}
