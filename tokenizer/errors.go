package tokenizer

import "errors"

// ErrUnknownEncoding reports an encoding name that this package cannot load. Callers match it
// with errors.Is.
var ErrUnknownEncoding = errors.New("unknown encoding")
