package gateway

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"time"

	"golang.org/x/sync/semaphore"
)

// Bounds on buffered (non-streaming) answers.
const (
	// answerStep is the least the buffer of an answer grows by, and what each write to the
	// client sends under one deadline.
	answerStep = 64 << 10
)

// errAnswerTooLarge is the cause of a 502 for an answer over max_response_bytes.
var errAnswerTooLarge = errors.New("upstream answer exceeds max_response_bytes")

// answerBuffer holds one buffered answer. Its memory, counted by capacity, is reserved from
// the gateway-wide answers budget before the buffer grows, so that all buffered answers
// together never hold more than response_memory_bytes; release returns the reservation.
type answerBuffer struct {
	b      []byte
	budget *semaphore.Weighted
	held   int64
}

// readAnswer reads body whole, within limit bytes and the budget. It returns errAnswerTooLarge
// past limit, errAnswersBudgetFull (an *apiError) when the budget has no room, or the read
// error.
func readAnswer(body io.Reader, contentLength, limit int64, budget *semaphore.Weighted, pooled []byte) (*answerBuffer, error) {
	if contentLength > limit {
		return &answerBuffer{budget: budget}, errAnswerTooLarge
	}
	ab := &answerBuffer{b: pooled[:0], budget: budget}
	if err := ab.reserve(int64(cap(pooled))); err != nil {
		ab.b = nil
		return ab, err
	}
	for {
		if len(ab.b) == cap(ab.b) {
			step := max(int64(cap(ab.b)), answerStep)
			if contentLength > 0 {
				step = max(contentLength+1-int64(len(ab.b)), 512) // read the known length, and see EOF
			}
			step = min(step, limit+1-int64(len(ab.b)))
			if err := ab.grow(step); err != nil {
				return ab, err
			}
		}
		n, err := body.Read(ab.b[len(ab.b):cap(ab.b)])
		ab.b = ab.b[:len(ab.b)+n]
		switch {
		case int64(len(ab.b)) > limit:
			return ab, errAnswerTooLarge
		case errors.Is(err, io.EOF):
			return ab, nil
		case err != nil:
			return ab, err
		}
	}
}

func (ab *answerBuffer) reserve(n int64) error {
	if n == 0 {
		return nil
	}
	if !ab.budget.TryAcquire(n) {
		return errAnswersBudgetFull()
	}
	ab.held += n
	return nil
}

// grow makes room for at least n more bytes, reserving what the new capacity adds.
func (ab *answerBuffer) grow(n int64) error {
	before := cap(ab.b)
	grown := slices.Grow(ab.b, int(n))
	if err := ab.reserve(int64(cap(grown) - before)); err != nil {
		return err
	}
	ab.b = grown
	return nil
}

// release returns the buffer's reservation to the budget; the buffer must not be used after.
func (ab *answerBuffer) release() {
	if ab.held > 0 {
		ab.budget.Release(ab.held)
		ab.held = 0
	}
}

// writeAnswer writes body to the client in steps, each with its own deadline, so that a
// client that stops reading is cut after timeout while a slow one that keeps reading is not.
func writeAnswer(w http.ResponseWriter, body []byte, timeout time.Duration) error {
	rc := http.NewResponseController(w)
	deadlines := rc.SetWriteDeadline(time.Time{}) == nil
	if deadlines {
		defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
	}
	for len(body) > 0 {
		n := min(len(body), answerStep)
		if deadlines {
			_ = rc.SetWriteDeadline(time.Now().Add(timeout))
		}
		if _, err := w.Write(body[:n]); err != nil {
			return err
		}
		body = body[n:]
	}
	return nil
}
