package tokenizer

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzSegments checks cutSegment on arbitrary text with a small segment size: the segments are
// non-empty, at most max bytes and join back to the text; and when every cut falls where
// startsPiece says a piece starts, the segment counts add up to the whole-text count in every
// supported encoding, which is what makes Count exact on ordinary text.
func FuzzSegments(f *testing.F) {
	for _, seed := range []string{
		"hello world", "a b c d e f g", "ab    cdefgh", "abc\n\n\ndefgh", "ab. \ncdefghij",
		"a.\nb.\ncdefgh", "don't stop  me\tnow\r\n", "naïve café\u00a0au lait\u3000日本語 テキスト",
		"x = 1234567 + 89;\n\tif x > 0 {\n\t\treturn\n\t}\n", "<|endoftext|> hello <|fim_prefix|>",
		"👍 🚀🚀 e\u0301t\u0301e\u0301 ..!? ((a)) /* c */ // d", strings.Repeat("xy", 20),
	} {
		f.Add(seed, uint8(7))
	}
	counters := make([]*Counter, 0, len(Encodings()))
	for _, enc := range Encodings() {
		counters = append(counters, mustNew(f, enc))
	}
	f.Fuzz(func(t *testing.T, text string, size uint8) {
		maxLen := 4 + int(size)%60
		if len(text) > 1024 {
			text = text[:1024] // keep whole-text encodes of long runs quick
		}
		segs := segments(text, maxLen)
		if joined := strings.Join(segs, ""); joined != text {
			t.Fatalf("segments(%q, %d) = %q, which join to %q", text, maxLen, segs, joined)
		}
		allPieceStarts := utf8.ValidString(text)
		for i, seg := range segs {
			if len(seg) == 0 || len(seg) > maxLen {
				t.Fatalf("segments(%q, %d) segment %d = %q, want 1 to %d bytes", text, maxLen, i, seg, maxLen)
			}
			if i > 0 {
				prev, _ := utf8.DecodeLastRuneInString(segs[i-1])
				r, _ := utf8.DecodeRuneInString(seg)
				allPieceStarts = allPieceStarts && isSpace(r) && startsPiece(prev, r)
			}
		}
		if !allPieceStarts {
			return
		}
		for _, c := range counters {
			sum := 0
			for _, seg := range segs {
				sum += len(c.tk.EncodeOrdinary(seg))
			}
			if want := len(c.tk.EncodeOrdinary(text)); sum != want {
				t.Errorf("%s: segments(%q, %d) = %q count %d, want %d (whole-text encode)",
					c.Encoding(), text, maxLen, segs, sum, want)
			}
		}
	})
}
