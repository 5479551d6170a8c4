package tokenizer

import (
	"fmt"
	"iter"
	"slices"
	"sync"
	"unsafe"

	tiktoken "github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// Names of the encodings that New accepts.
const (
	// CL100KBase is the encoding of gpt-4, gpt-3.5-turbo and the text-embedding-3 models, and
	// the default estimate for models that are not OpenAI's.
	CL100KBase = "cl100k_base"
	// O200KBase is the encoding of gpt-4o, gpt-4.1, gpt-5 and the o-series models.
	O200KBase = "o200k_base"
	// P50KBase is the encoding of the Codex models and text-davinci-002/003.
	P50KBase = "p50k_base"
	// R50KBase is the encoding of the GPT-3 models such as davinci (also known as gpt2).
	R50KBase = "r50k_base"
)

// installLoader points tiktoken-go at the BPE files embedded in tiktoken-go-loader instead of
// downloading them. tiktoken.SetBpeLoader sets process-global state, so it runs once (STYLE
// 2.9 #9: this is one of the package's two allowed pieces of mutable package-level state).
var installLoader = sync.OnceFunc(func() {
	tiktoken.SetBpeLoader(tiktoken_loader.NewOfflineLoader())
})

// encoders holds one lazily loaded encoder per supported encoding. tiktoken-go caches the
// parsed BPE ranks but builds a new encoder (decoder map, sorted vocabulary, compiled
// regular expressions) on every GetEncoding call, so each encoder is built once per process
// and shared by every Counter of that encoding. The map itself is never written after package
// initialisation; the sync.OnceValues inside it are the package's other allowed piece of
// mutable package-level state.
var encoders = map[string]func() (*tiktoken.Tiktoken, error){
	CL100KBase: loadOnce(CL100KBase),
	O200KBase:  loadOnce(O200KBase),
	P50KBase:   loadOnce(P50KBase),
	R50KBase:   loadOnce(R50KBase),
}

// loadOnce returns a function that loads encoding on its first call and returns the same
// encoder, or the same error, on every later call.
func loadOnce(encoding string) func() (*tiktoken.Tiktoken, error) {
	return sync.OnceValues(func() (*tiktoken.Tiktoken, error) {
		installLoader()
		tk, err := tiktoken.GetEncoding(encoding)
		if err != nil {
			return nil, fmt.Errorf("load encoding %s: %w", encoding, err)
		}
		return tk, nil
	})
}

// Encodings returns the names of the encodings that New accepts, sorted. The caller owns the
// returned slice. It loads nothing, so configuration validation can call it cheaply.
func Encodings() []string {
	names := make([]string, 0, len(encoders))
	for name := range encoders {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Counter counts tokens with one BPE encoding. It is safe for concurrent use. The zero value
// is not usable; create Counters with New.
type Counter struct {
	encoding string
	tk       *tiktoken.Tiktoken
}

// New returns a Counter for encoding: "cl100k_base", "o200k_base", "p50k_base" or
// "r50k_base" (see Encodings). Any other name returns an error wrapping ErrUnknownEncoding.
//
// The first New for an encoding loads its BPE data from the files embedded in the binary,
// which takes hundreds of milliseconds; later calls for the same encoding, from any
// goroutine, return at once and share the loaded data.
func New(encoding string) (*Counter, error) {
	load, ok := encoders[encoding]
	if !ok {
		return nil, fmt.Errorf("new counter %q: %w", encoding, ErrUnknownEncoding)
	}
	tk, err := load()
	if err != nil {
		return nil, fmt.Errorf("new counter: %w", err)
	}
	return &Counter{encoding: encoding, tk: tk}, nil
}

// Encoding returns the name of the encoding c counts with, as given to New.
func (c *Counter) Encoding() string {
	return c.encoding
}

// Count returns the number of tokens in text. Special tokens get no special treatment:
// "<|endoftext|>" in text is encoded as ordinary text.
//
// The cost of Count is linear in len(text) and bounded: tiktoken-go's byte-pair merge is
// quadratic in the length of a run without whitespace, so Count encodes text in segments of
// at most 1 KiB (see doc.go) and encodes at most its first 1 MiB. The result is therefore
//
//   - exact (tiktoken's own count) for text below 1 KiB;
//   - segment-exact up to 1 MiB: the sum of the counts of the segments, which equals
//     tiktoken's count whenever every 1 KiB of text has a whitespace character after a word
//     (prose, code), and otherwise is off by about one token per cut;
//   - estimated beyond 1 MiB: the first 1 MiB (cut at a rune boundary) is counted as above
//     and the rest estimated from its tokens per byte, so the result is that count scaled by
//     len(text) over the length of the prefix, rounded to the nearest integer.
//
// That is close enough for the gateway's usage estimates.
func (c *Counter) Count(text string) int {
	b := newBudget()
	return b.count(c, text) + b.estimate()
}

// countSegments returns the sum of the token counts of the segments of text that cutSegment
// chooses; text of at most maxSegment bytes is one segment.
func (c *Counter) countSegments(text string) int {
	n := 0
	for text != "" {
		cut := cutSegment(text, maxSegment)
		n += len(c.tk.EncodeOrdinary(text[:cut]))
		text = text[cut:]
	}
	return n
}

// CountBytes returns the number of tokens in b, like Count(string(b)) but without copying b;
// its cost bound and exactness are those of Count. The caller must not modify b until
// CountBytes returns; c keeps no reference to b afterwards.
func (c *Counter) CountBytes(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	// The encoder only reads the text during the call (it converts it to runes and slices
	// those) and retains nothing, so viewing b as a string without a copy is safe here.
	return c.Count(unsafe.String(unsafe.SliceData(b), len(b)))
}

// CountTexts returns the total tokens of texts, counted like Count but with one bound for the
// whole sequence: once 1 MiB of text has been encoded the rest is only measured and estimated,
// so a request with a million short strings costs no more than one with a single long one.
func (c *Counter) CountTexts(texts iter.Seq[string]) int {
	b := newBudget()
	n := 0
	for t := range texts {
		n += b.count(c, t)
	}
	return n + b.estimate()
}
