package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// Limits that keep the cost of counting linear in the length of the text and bounded in total.
// tiktoken-go's byte-pair merge is quadratic in the length of a piece, and a run without
// whitespace is one piece, so no single encode call may see more than maxSegment bytes, and
// no Count or CountMessages call encodes more than maxExact bytes.
const (
	// maxSegment is the most bytes that one call of the encoder sees. Texts of at most this
	// many bytes are encoded whole, so their counts are exactly tiktoken's.
	maxSegment = 1 << 10
	// maxExact is the most bytes that one Count or CountMessages call encodes. The rest of
	// the text is estimated from the tokens per byte of the encoded part (see budget).
	maxExact = 1 << 20
)

// cutSegment returns the length of the first segment of s, which is at most limit bytes long
// and at least 1 byte (limit must be positive). Text of at most limit bytes is one segment.
// Otherwise the cut falls, in order of preference:
//
//  1. just before the last whitespace character within reach where the pre-tokenizers of
//     every supported encoding start a new piece (see startsPiece), so that splitting there
//     changes no count;
//  2. just before the last whitespace character within reach, so that " word" stays together;
//  3. at the last UTF-8 rune boundary within reach, or at limit itself when s holds no rune
//     start near there (invalid UTF-8).
//
// "Within reach" means at an offset from 1 to limit, so every segment is non-empty and at most
// limit bytes long; the whitespace character after a cut starts the next segment.
func cutSegment(s string, limit int) int {
	if len(s) <= limit {
		return len(s)
	}
	// Step back from limit to the start of the rune that straddles or starts at it.
	end := limit
	for i := limit; i > limit-utf8.UTFMax && i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			end = i
			break
		}
	}
	// Walk the rune starts from end down to 1, looking at the rune that begins at each and
	// the one before it.
	anySpace := -1
	for i := end; i > 0; {
		r, _ := utf8.DecodeRuneInString(s[i:])
		prev, size := utf8.DecodeLastRuneInString(s[:i])
		if isSpace(r) {
			if startsPiece(prev, r) {
				return i
			}
			if anySpace < 0 {
				anySpace = i
			}
		}
		i -= size
	}
	if anySpace > 0 {
		return anySpace
	}
	return end
}

// startsPiece reports whether whitespace r, following non-whitespace prev, always starts a
// new piece in the pre-tokenizer patterns of cl100k_base, o200k_base, p50k_base and r50k_base.
// No piece of those patterns holds a non-whitespace character followed by whitespace, except
// that a run of punctuation (in cl100k_base and o200k_base) takes the line breaks after it:
// ".\n" is one piece. So a run of whitespace starts a piece unless it begins with '\r' or
// '\n' right after a character that is neither a letter nor a number. Nor does any pattern
// look behind, so the text after such a point is split the same with or without the text
// before it, and the text before it ends with non-whitespace, which no pattern extends.
func startsPiece(prev, r rune) bool {
	if isSpace(prev) {
		return false
	}
	if r != '\r' && r != '\n' {
		return true
	}
	return unicode.IsLetter(prev) || unicode.IsNumber(prev)
}

// isSpace reports whether r is whitespace as the encodings' pre-tokenizer patterns use \s.
func isSpace(r rune) bool {
	if r < utf8.RuneSelf {
		switch r {
		case ' ', '\t', '\n', '\v', '\f', '\r':
			return true
		}
		return false
	}
	return unicode.IsSpace(r)
}

// prefixAtRune returns the longest prefix of s that is at most n bytes long and ends at a UTF-8
// rune boundary (or at n itself when s holds no rune start near there).
func prefixAtRune(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for i := n; i > n-utf8.UTFMax && i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i]
		}
	}
	return s[:n]
}
