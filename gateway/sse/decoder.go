package sse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
)

const (
	// defaultBufferSize is the initial size of a Decoder's read buffer made by NewDecoder.
	defaultBufferSize = 4 << 10
	// defaultMaxEventSize is the largest event, in bytes of its Raw, that a Decoder made by
	// NewDecoder accepts.
	defaultMaxEventSize = 16 << 20

	// maxEmptyReads is how many (0, nil) reads in a row fill accepts before it gives up with
	// io.ErrNoProgress, as bufio does.
	maxEmptyReads = 100
	// minBufferSize keeps a tiny requested buffer from growing one byte at a time.
	minBufferSize = 16
)

// bom is the UTF-8 byte order mark that may start a stream.
const bom = "\xEF\xBB\xBF"

// Event is one SSE event: the lines up to and including the blank line that ends it. Its byte
// slices alias the Decoder's internal buffers and are valid only until the next call to Next;
// copy them to keep them longer.
type Event struct {
	// Raw is the event's bytes exactly as received, from its first line through the
	// terminating blank line, with every line ending as received. For an event cut short by
	// the end of the stream (no final blank line) Raw is what was received. A byte order mark
	// at the start of the stream and blank lines between events are not part of any Raw.
	Raw []byte
	// Data is the event's data: the values of all "data" fields joined with "\n", each with
	// one space after the colon stripped. It is nil when the event has no data field and
	// empty, not nil, when its data fields are empty.
	Data []byte
	// Name is the value of the event's last "event" field, nil if it has none.
	Name []byte
	// ID is the value of the event's last "id" field, nil if it has none. As the
	// specification says, an id field whose value contains a NUL byte is ignored.
	ID []byte
	// Comment is true when every non-blank line of the event is a comment (starts with ':').
	Comment bool
}

// Decoder reads SSE events from an io.Reader. Make one with NewDecoder or NewDecoderSize; the
// zero value is not usable. A Decoder is not safe for concurrent use.
type Decoder struct {
	r        io.Reader
	buf      []byte // read buffer; grows up to maxEvent+1 bytes
	start    int    // offset in buf of the current event: earlier bytes are consumed
	end      int    // offset in buf after the last byte read
	maxEvent int
	readErr  error  // first error from r, io.EOF included; r is not read after it
	fatal    error  // sticky error returned by every later call to Next
	scratch  []byte // joined data of events with more than one data field; reused
	bomDone  bool   // the start of the stream was checked for a byte order mark
}

// NewDecoder returns a Decoder that reads from r with an initial buffer of 4 KiB and a
// maximum event size of 16 MiB.
func NewDecoder(r io.Reader) *Decoder {
	return NewDecoderSize(r, defaultBufferSize, defaultMaxEventSize)
}

// NewDecoderSize returns a Decoder that reads from r with an initial buffer of bufSize bytes
// and accepts events of at most maxEvent bytes (the length of their Raw). A bufSize of zero
// or less means 4 KiB, and a maxEvent of zero or less means 16 MiB. The buffer grows, when a
// longer event needs it, up to maxEvent+1 bytes and keeps its size afterwards, as does the
// scratch buffer that joins multi-line data.
func NewDecoderSize(r io.Reader, bufSize, maxEvent int) *Decoder {
	if bufSize <= 0 {
		bufSize = defaultBufferSize
	}
	bufSize = max(bufSize, minBufferSize)
	if maxEvent <= 0 {
		maxEvent = defaultMaxEventSize
	}
	maxEvent = min(maxEvent, math.MaxInt-1)
	return &Decoder{r: r, buf: make([]byte, bufSize), maxEvent: maxEvent}
}

// eventState is what Next has learned about the event it is decoding. Offsets are relative
// to Decoder.start, so they survive the buffer being compacted or grown.
type eventState struct {
	started        bool // a non-blank line was seen
	comment        bool // every non-blank line so far is a comment
	nData          int  // number of data fields
	dataLo, dataHi int  // value of the first data field
	hasName, hasID bool
	nameLo, nameHi int
	idLo, idHi     int
}

// Next returns the next event.
//
// It returns io.EOF after the last event, never io.ErrUnexpectedEOF: an event that the end of
// the stream cut short (it has at least one non-blank line but no terminating blank line) is
// returned as a final event first. A browser would discard it; a proxy must not lose bytes.
// Blank lines that end no event produce nothing.
//
// An event whose Raw would exceed the maximum event size returns an error matching
// ErrEventTooLarge. A read error from the underlying reader is returned wrapped as
// "read sse: %w" once the events that were fully read before it are consumed. After any
// error, including io.EOF, every later call returns the same error.
//
// A CR that ends the bytes read so far may be the first half of a CRLF, so Next reads one
// more byte before it returns an event whose last byte is that CR. Streams that use LF or
// CRLF endings are never delayed by this.
func (d *Decoder) Next() (Event, error) {
	if d.fatal != nil {
		return Event{}, d.fatal
	}
	if !d.bomDone {
		d.skipBOM()
	}
	var st eventState
	line, scan := 0, 0 // start of the current line; where the search for its end resumes
	for {
		k := indexEOL(d.buf[d.start+scan : d.end])
		if k < 0 {
			scan = d.end - d.start
			if d.readErr != nil {
				return d.finish(&st, line)
			}
			if err := d.more(); err != nil {
				return Event{}, err
			}
			continue
		}
		eol := scan + k
		next := eol + 1
		if d.buf[d.start+eol] == '\r' {
			switch {
			case d.start+next < d.end:
				if d.buf[d.start+next] == '\n' {
					next++
				}
			case d.readErr == nil:
				// The CR is the last byte read: an LF may follow in the next read.
				scan = eol
				if err := d.more(); err != nil {
					return Event{}, err
				}
				continue
			}
		}
		if eol == line { // a blank line
			if !st.started {
				d.start += next // it ends no event: skip it
				line, scan = 0, 0
				continue
			}
			return d.dispatch(&st, next)
		}
		d.parseLine(&st, line, eol)
		line, scan = next, next
	}
}

// finish handles the end of the stream (or a read error) with the current event read up to
// d.end and its last line, if any, unterminated from line on.
func (d *Decoder) finish(st *eventState, line int) (Event, error) {
	if !errors.Is(d.readErr, io.EOF) {
		return Event{}, d.fail(fmt.Errorf("read sse: %w", d.readErr))
	}
	n := d.end - d.start
	if line < n { // an unterminated last line; it has no CR or LF, so it is not blank
		d.parseLine(st, line, n)
	}
	if !st.started {
		return Event{}, d.fail(io.EOF)
	}
	return d.dispatch(st, n)
}

// dispatch returns the event of n bytes at d.start and consumes it.
func (d *Decoder) dispatch(st *eventState, n int) (Event, error) {
	if n > d.maxEvent {
		return Event{}, d.fail(d.tooLarge())
	}
	s := d.start
	d.start += n
	ev := Event{Raw: d.buf[s : s+n : s+n], Comment: st.comment}
	switch {
	case st.nData == 1:
		ev.Data = d.buf[s+st.dataLo : s+st.dataHi : s+st.dataHi]
	case st.nData > 1:
		ev.Data = d.scratch[:len(d.scratch):len(d.scratch)]
	}
	if st.hasName {
		ev.Name = d.buf[s+st.nameLo : s+st.nameHi : s+st.nameHi]
	}
	if st.hasID {
		ev.ID = d.buf[s+st.idLo : s+st.idHi : s+st.idHi]
	}
	return ev, nil
}

// parseLine applies the non-blank line at [lo, hi) of the current event to st.
func (d *Decoder) parseLine(st *eventState, lo, hi int) {
	if !st.started { // the event's first line
		st.started, st.comment = true, true
	}
	s := d.start
	ln := d.buf[s+lo : s+hi]
	if ln[0] == ':' {
		return
	}
	st.comment = false
	nameEnd, vLo := len(ln), len(ln) // a line without a colon: the whole line names the field
	if c := bytes.IndexByte(ln, ':'); c >= 0 {
		nameEnd, vLo = c, c+1
		if vLo < len(ln) && ln[vLo] == ' ' {
			vLo++
		}
	}
	vLo += lo
	switch string(ln[:nameEnd]) {
	case "data":
		if st.nData == 0 {
			st.dataLo, st.dataHi = vLo, hi
		} else {
			if st.nData == 1 {
				d.scratch = append(d.scratch[:0], d.buf[s+st.dataLo:s+st.dataHi]...)
			}
			d.scratch = append(d.scratch, '\n')
			d.scratch = append(d.scratch, d.buf[s+vLo:s+hi]...)
		}
		st.nData++
	case "event":
		st.hasName, st.nameLo, st.nameHi = true, vLo, hi
	case "id":
		if bytes.IndexByte(d.buf[s+vLo:s+hi], 0) < 0 {
			st.hasID, st.idLo, st.idHi = true, vLo, hi
		}
	}
}

// skipBOM reads until it can tell whether the stream starts with a byte order mark, and
// skips the mark if it does.
func (d *Decoder) skipBOM() {
	for d.readErr == nil && d.end-d.start < len(bom) && bytes.HasPrefix([]byte(bom), d.buf[d.start:d.end]) {
		d.fill()
	}
	if bytes.HasPrefix(d.buf[d.start:d.end], []byte(bom)) {
		d.start += len(bom)
	}
	d.bomDone = true
}

// more reads more bytes of the current event, all of whose bytes so far are buffered. It
// fails with ErrEventTooLarge when those bytes already exceed the maximum event size, so the
// buffer never grows past maxEvent+1 bytes.
func (d *Decoder) more() error {
	if d.end-d.start > d.maxEvent {
		return d.fail(d.tooLarge())
	}
	d.fill()
	return nil
}

// fill reads more bytes into the buffer after d.end, compacting and growing the buffer as
// needed. It records the reader's error, or a reader that makes no progress, in d.readErr.
func (d *Decoder) fill() {
	if d.start > 0 {
		d.end = copy(d.buf, d.buf[d.start:d.end])
		d.start = 0
	}
	if d.end == len(d.buf) {
		// Here d.end <= maxEvent, so the new size is larger than the old one.
		grown := make([]byte, min(2*len(d.buf), d.maxEvent+1))
		copy(grown, d.buf[:d.end])
		d.buf = grown
	}
	for range maxEmptyReads {
		n, err := d.r.Read(d.buf[d.end:])
		if n < 0 || n > len(d.buf)-d.end {
			d.readErr = errInvalidRead
			return
		}
		d.end += n
		if err != nil {
			d.readErr = err
			return
		}
		if n > 0 {
			return
		}
	}
	d.readErr = io.ErrNoProgress
}

// fail makes err the Decoder's sticky error and returns it.
func (d *Decoder) fail(err error) error {
	d.fatal = err
	return err
}

// tooLarge returns the error for an event over the size limit.
func (d *Decoder) tooLarge() error {
	return fmt.Errorf("%w: more than %d bytes", ErrEventTooLarge, d.maxEvent)
}

// indexEOL returns the index of the first CR or LF in b, or -1.
func indexEOL(b []byte) int {
	lf := bytes.IndexByte(b, '\n')
	if lf < 0 {
		return bytes.IndexByte(b, '\r')
	}
	if cr := bytes.IndexByte(b[:lf], '\r'); cr >= 0 {
		return cr
	}
	return lf
}
