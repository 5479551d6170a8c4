package tokenizer

import "math"

// budget bounds the bytes that one Count or CountMessages call encodes. Texts are counted
// exactly (segment by segment) until maxExact bytes have been encoded; what is left over is
// only measured in bytes and, at the end, estimated from the tokens per byte of the encoded
// part. A budget is used by one call on one goroutine and then dropped.
type budget struct {
	left    int // bytes that may still be encoded
	tokens  int // tokens counted in the encoded bytes
	encoded int // bytes encoded so far
	skipped int // bytes not encoded, to be estimated
}

// newBudget returns a budget that encodes at most maxExact bytes.
func newBudget() budget {
	return budget{left: maxExact}
}

// count returns the tokens of the part of text that fits the budget, cut at a rune boundary,
// and records the rest of text as skipped.
func (b *budget) count(c *Counter, text string) int {
	if text == "" {
		return 0
	}
	counted := text
	if len(text) > b.left {
		counted = prefixAtRune(text, b.left)
		b.left = 0
	} else {
		b.left -= len(text)
	}
	n := c.countSegments(counted)
	b.tokens += n
	b.encoded += len(counted)
	b.skipped += len(text) - len(counted)
	return n
}

// estimate returns the estimated tokens of the skipped bytes: their length times the tokens
// per byte of the encoded ones, rounded to the nearest integer.
func (b *budget) estimate() int {
	if b.skipped == 0 || b.encoded == 0 {
		return 0
	}
	return int(math.Round(float64(b.tokens) * float64(b.skipped) / float64(b.encoded)))
}
