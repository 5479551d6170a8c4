package gateway

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/semaphore"
)

// intake reads request bodies within three bounds: max_body_bytes per body (after decoding),
// body_read_timeout per body, and body_memory_bytes for all bodies being read or held at
// once. It also holds the parsed trusted_proxies for the forwarding headers (forwarded.go).
// It is safe for concurrent use.
//
// The read deadline is set on the connection through http.ResponseController for the time
// the body is read, and cleared after it. The server's own ReadTimeout stays 0 on purpose: a
// connection read deadline still set when the body ends would fire in net/http's background
// read during a long stream and cancel the request. ReadHeaderTimeout bounds the headers.
type intake struct {
	timeout time.Duration
	budget  *semaphore.Weighted // body_memory_bytes
	inUse   atomic.Int64        // bytes reserved from budget
	trusted []netip.Prefix

	mu       sync.Mutex
	uploads  map[*upload]struct{} // bodies being read
	draining bool                 // set by cutUploads; later uploads are cut at once
}

// upload is one body being read.
type upload struct {
	rc  *http.ResponseController
	cut bool // the gateway is shutting down and cut it; guarded by intake.mu
}

// Reasons a body read stopped that are the gateway's, not the connection's.
var (
	errMemoryBudget = errors.New("request bodies being read hold all of body_memory_bytes")
	errBodyTooLarge = errors.New("request body is larger than max_body_bytes")
)

// initialBodyBuffer is the first reservation for a body of unknown or large size; it doubles
// as the body arrives. A body announced at up to smallBody is reserved whole at once.
const (
	initialBodyBuffer = 16 << 10
	smallBody         = 64 << 10
)

func newIntake(c Config) (*intake, error) {
	in := &intake{timeout: c.BodyReadTimeout.D(), budget: semaphore.NewWeighted(c.BodyMemoryBytes),
		uploads: map[*upload]struct{}{}}
	for _, s := range c.TrustedProxies {
		p, err := parseTrusted(s)
		if err != nil {
			return nil, err
		}
		in.trusted = append(in.trusted, p)
	}
	return in, nil
}

// readRequest is step 2: it reads the body within max_body_bytes, body_read_timeout and the
// shared body_memory_bytes, decoding it when it is gzip-encoded, and parses the fields the
// gateway acts on.
//
// The returned release gives the body's memory back to body_memory_bytes. It is never nil:
// on an error readRequest has released already and release does nothing. Call it once the
// body (req.body and anything aliasing it) is no longer used, when the request ends.
func (g *Gateway) readRequest(w http.ResponseWriter, r *http.Request, kind routeKind) (req apiRequest, release func(), err error) {
	in, limit := g.intake, g.cfg.MaxBodyBytes
	gz, err := bodyEncoding(r.Header)
	if err != nil {
		return apiRequest{}, noRelease, err
	}
	if !gz && r.ContentLength > limit {
		return apiRequest{}, noRelease, errTooLarge(limit)
	}
	u := in.begin(w)
	raw := &netBody{r: http.MaxBytesReader(w, r.Body, limit)} // also bounds the encoded bytes
	var (
		body     []byte
		reserved int64
	)
	if gz {
		var zr *gzip.Reader
		if zr, err = gzip.NewReader(raw); err == nil {
			body, reserved, err = in.readBody(zr, limit, -1)
		}
	} else {
		body, reserved, err = in.readBody(raw, limit, r.ContentLength)
	}
	cut := in.end(u, err == nil)
	if err != nil {
		in.give(reserved)
		return apiRequest{}, noRelease, in.readError(r.Context(), err, raw.err, gz, cut, limit)
	}
	release = sync.OnceFunc(func() { in.give(reserved) })
	if req, err = parseRequest(kind, body); err != nil {
		release()
		return apiRequest{}, noRelease, err
	}
	return req, release, nil
}

func noRelease() {}

// bodyEncoding reads Content-Encoding: whether the body is gzip-encoded, or an error for an
// encoding the gateway does not decode.
func bodyEncoding(h http.Header) (gz bool, err error) {
	var codings []string
	for _, v := range h.Values("Content-Encoding") {
		for c := range strings.SplitSeq(v, ",") {
			if c = strings.ToLower(strings.TrimSpace(c)); c != "" && c != "identity" {
				codings = append(codings, c)
			}
		}
	}
	switch {
	case len(codings) == 0:
		return false, nil
	case len(codings) == 1 && (codings[0] == "gzip" || codings[0] == "x-gzip"):
		return true, nil
	default:
		return false, errUnsupportedEncoding(strings.Join(codings, ", "))
	}
}

// begin registers a body about to be read and sets its read deadline: body_read_timeout from
// now, or now when the gateway is already shutting down.
func (in *intake) begin(w http.ResponseWriter) *upload {
	u := &upload{rc: http.NewResponseController(w)}
	in.mu.Lock()
	defer in.mu.Unlock()
	deadline := time.Now().Add(in.timeout)
	if in.draining {
		deadline, u.cut = time.Now(), true
	}
	// A writer without deadlines (not net/http's) leaves the body bounded by the client alone.
	_ = u.rc.SetReadDeadline(deadline)
	in.uploads[u] = struct{}{}
	return u
}

// end unregisters u. Once the body was read whole it clears the deadline, so that it cannot
// fire in net/http's background read while the request runs. After a failed read the
// deadline stays: net/http reads what is left of the body before it answers (up to 256 KiB),
// and a body that stalled must not hold the answer longer than it already did.
// It reports whether shutdown cut the upload.
func (in *intake) end(u *upload, whole bool) (cut bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	delete(in.uploads, u)
	if whole {
		_ = u.rc.SetReadDeadline(time.Time{})
	}
	return u.cut
}

// cutUploads ends the reads of every body still arriving, and of those that start later: a
// stalled upload must not hold shutdown for shutdown_grace. Their requests get 503.
func (in *intake) cutUploads() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.draining = true
	now := time.Now()
	for u := range in.uploads {
		u.cut = true
		_ = u.rc.SetReadDeadline(now)
	}
}

// reserve takes n bytes from body_memory_bytes without waiting.
func (in *intake) reserve(n int64) bool {
	if n <= 0 {
		return true
	}
	if !in.budget.TryAcquire(n) {
		return false
	}
	in.inUse.Add(n)
	return true
}

// give returns n bytes to body_memory_bytes.
func (in *intake) give(n int64) {
	if n > 0 {
		in.inUse.Add(-n)
		in.budget.Release(n)
	}
}

// reserved is the memory that bodies hold now.
func (in *intake) reserved() int64 { return in.inUse.Load() }

// readBody reads src whole into a buffer whose capacity is reserved from body_memory_bytes
// before it grows: hint (a Content-Length) up front when it is small, else a little, doubled
// as the bytes arrive, never past hint or limit. A client that announces a large body and
// sends nothing holds almost nothing. It returns the bytes reserved, also on an error.
func (in *intake) readBody(src io.Reader, limit, hint int64) (body []byte, reserved int64, err error) {
	size := min(limit, initialBodyBuffer)
	if hint >= 0 && hint <= max(size, smallBody) {
		size = hint
	}
	if !in.reserve(size) {
		return nil, 0, errMemoryBudget
	}
	reserved = size
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			// Full: look for one more byte before growing, so that a body of exactly the
			// announced size (the usual case) is read into one buffer of that size.
			var one [1]byte
			n, err := readSome(src, one[:])
			if n == 0 {
				if errors.Is(err, io.EOF) {
					return buf, reserved, nil
				}
				return nil, reserved, err
			}
			if int64(len(buf)) >= limit {
				return nil, reserved, errBodyTooLarge
			}
			grow := min(max(int64(cap(buf)), initialBodyBuffer), limit-int64(cap(buf)))
			if hint > int64(cap(buf)) { // the rest of the announced body, at most
				grow = min(grow, hint-int64(cap(buf)))
			}
			if !in.reserve(grow) {
				return nil, reserved, errMemoryBudget
			}
			reserved += grow
			grown := make([]byte, len(buf), int64(cap(buf))+grow)
			copy(grown, buf)
			buf = append(grown, one[0])
			if errors.Is(err, io.EOF) {
				return buf, reserved, nil
			}
			if err != nil {
				return nil, reserved, err
			}
			continue
		}
		n, err := src.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, reserved, nil
		}
		if err != nil {
			return nil, reserved, err
		}
	}
}

// readSome reads into p until it gets a byte or an error, as io.ReadAtLeast(r, p, 1) would
// without its short-buffer rule.
func readSome(r io.Reader, p []byte) (int, error) {
	for range 100 {
		if n, err := r.Read(p); n > 0 || err != nil {
			return n, err
		}
	}
	return 0, io.ErrNoProgress
}

// netBody records the error of reading the body off the connection, as opposed to decoding
// it, so that a gzip stream that is corrupt is told from a client that went away.
type netBody struct {
	r   io.Reader
	err error
}

func (b *netBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		b.err = err
	}
	return n, err
}

// readError names why reading a body failed: err is what the read returned, netErr what the
// connection did (nil when the bytes arrived and did not decode), gz whether the body was
// gzip-encoded.
func (in *intake) readError(ctx context.Context, err, netErr error, gz, cut bool, limit int64) *apiError {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.Is(err, errBodyTooLarge) || errors.As(err, &tooLarge):
		return errTooLarge(limit)
	case errors.Is(err, errMemoryBudget):
		return errMemoryBudgetFull()
	case cut:
		return errDraining()
	case netErr == nil && gz:
		return errInvalid("", "The gzip-encoded request body could not be decoded: %v.", err)
	case errors.Is(netErr, os.ErrDeadlineExceeded):
		return errBodyTimeout(in.timeout)
	case clientWentAway(ctx, netErr):
		return errClientGone(ctx, netErr)
	default:
		return errInvalid("", "Could not read the request body.")
	}
}

// clientWentAway reports whether a body read failed because the client closed or reset the
// connection before sending the whole body. net/http cancels the request's context on any
// error reading the connection; the errors are checked too for servers that do not.
func clientWentAway(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, context.Canceled)
}

// refuseBody ends the body of a request answered without reading it (a 404, a 405, a 415, a
// request refused while draining or past a budget), before the answer, so that net/http does
// not wait for the rest of it with no deadline: what is left is read for at most a second
// (256 KiB at most, as net/http would), and the connection closes after the answer.
func refuseBody(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(time.Second))
	_ = r.Body.Close()
	w.Header().Set("Connection", "close")
}
