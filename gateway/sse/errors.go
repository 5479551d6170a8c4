package sse

import "errors"

// ErrEventTooLarge reports an event whose bytes (its Raw, terminating blank line included)
// exceed the Decoder's maximum event size. Callers match it with errors.Is. After it the
// Decoder returns the same error from every call to Next.
var ErrEventTooLarge = errors.New("sse event too large")

// errInvalidRead reports an io.Reader that returned a byte count outside [0, len(p)].
var errInvalidRead = errors.New("reader returned invalid count")
