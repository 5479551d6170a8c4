package tokenizer

import (
	"encoding/base64"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// segments splits text the way countSegments does and returns the segments.
func segments(text string, limit int) []string {
	var segs []string
	for text != "" {
		cut := cutSegment(text, limit)
		segs = append(segs, text[:cut])
		text = text[cut:]
	}
	return segs
}

// randomBase64 returns n bytes of base64 text without whitespace, the same for every seed.
func randomBase64(n int, seed uint64) string {
	r := rand.New(rand.NewPCG(seed, seed))
	raw := make([]byte, base64.StdEncoding.DecodedLen(n)+3)
	for i := range raw {
		raw[i] = byte(r.Uint32())
	}
	return base64.StdEncoding.EncodeToString(raw)[:n]
}

// docPieces are the bits randomDocument strings together: words, numbers, punctuation,
// contractions, non-ASCII letters and marks, emoji, and every kind of whitespace, including
// line breaks right after punctuation and after letters.
var docPieces = []string{
	"the", "gateway", "Counts", "TOKENS", "don't", "we'll", "I'M", "naïve", "café", "Привет",
	"日本語", "お誕生日", "e\u0301t\u0301e\u0301", "👍", "🚀🚀", "42", "3.14159", "1234567", "x²",
	".", ",", "!", "?!", "...", "(", ")", "{\"a\":1}", "/*", "*/", "//", "->", "<|endoftext|>",
	" ", " ", " ", " ", "  ", "   ", "\t", "\n", "\n", "\n\n", "\r\n", " \n", "\u00a0", "\u3000",
}

// randomDocument returns about n bytes of text drawn from docPieces, the same for every seed.
func randomDocument(n int, seed uint64) string {
	r := rand.New(rand.NewPCG(seed, 1))
	var sb strings.Builder
	for sb.Len() < n {
		sb.WriteString(docPieces[r.IntN(len(docPieces))])
	}
	return sb.String()
}

func TestCutSegment(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in    string
		limit, want int
	}{
		{"shorter than max", "hello", 8, 5},
		{"exactly max", "abcdefgh", 8, 8},
		{"before a space after a word", "hello world", 8, 5},
		{"before the last such space", "a b c d e f", 8, 7},
		{"space right at max", "abcdefgh ij", 8, 8},
		{"at the start of a run of spaces", "ab    cdefgh", 8, 2},
		{"line break after a word", "abc\n\n\ndefgh", 8, 3},
		{"space after punctuation", "ab. \ncdefghij", 8, 3},
		{"line break after punctuation only", "a.\nb.\ncdefgh", 8, 5},
		{"piece start before a later line break", "ab cd.\n\nefghij", 8, 2},
		{"tab after a word", "abcd\tefghij", 8, 4},
		{"ideographic space", "ab\u3000cdefghijk", 8, 2},
		{"no-break space", "abc\u00a0defghij", 8, 3},
		{"whitespace only", strings.Repeat(" ", 12), 8, 8},
		{"limit of one", "ab", 1, 1},
		{"limit inside the first rune", "日本", 2, 2},
		{"no whitespace", "abcdefghijk", 8, 8},
		{"two-byte runes", "ééééé", 7, 6},
		{"three-byte runes", "日本語日本語", 8, 6},
		{"four-byte runes", "👍👍👍", 7, 4},
		{"invalid UTF-8", strings.Repeat("\x80", 12), 8, 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := cutSegment(tc.in, tc.limit); got != tc.want {
				t.Errorf("cutSegment(%q, %d) = %d (%q | %q), want %d (%q | %q)", tc.in, tc.limit,
					got, tc.in[:got], tc.in[got:], tc.want, tc.in[:tc.want], tc.in[tc.want:])
			}
		})
	}
}

// TestSegments checks the segmentation of long inputs: every segment is non-empty and at
// most maxSegment bytes, the segments join back to the input, a cut falls just before
// whitespace whenever the reach of the cut holds any (and before a piece start whenever it
// holds one), otherwise at a rune boundary, and the number of segments grows linearly.
func TestSegments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
	}{
		{"1 MiB of x", strings.Repeat("x", 1<<20)},
		{"1 MiB of base64", randomBase64(1<<20, 1)},
		{"prose", strings.Repeat(prose+"\n", 64)},
		{"random document", randomDocument(256<<10, 2)},
		{"words with long line-break runs", strings.Repeat("word."+strings.Repeat("\n", 5000), 20)},
		{"long space runs", strings.Repeat("a"+strings.Repeat(" ", 9000), 20)},
		{"sparse spaces", strings.Repeat(strings.Repeat("y", 4095)+" ", 40)},
		{"Japanese", strings.Repeat("お誕生日おめでとう", 2000)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			segs := segments(tc.in, maxSegment)
			if joined := strings.Join(segs, ""); joined != tc.in {
				t.Fatalf("segments of %s (%d bytes) join to %d bytes, want the input back", tc.name, len(tc.in), len(joined))
			}
			if limit := 2*len(tc.in)/maxSegment + 2; len(segs) > limit {
				t.Errorf("%s (%d bytes) has %d segments, want at most %d", tc.name, len(tc.in), len(segs), limit)
			}
			rest := tc.in
			for i, seg := range segs {
				if len(seg) == 0 || len(seg) > maxSegment {
					t.Fatalf("%s segment %d is %d bytes, want 1 to %d", tc.name, i, len(seg), maxSegment)
				}
				next := rest[len(seg):]
				if next != "" {
					checkCut(t, tc.name, i, rest, len(seg))
				}
				rest = next
			}
		})
	}
}

// checkCut checks one cut at offset cut of rest, the text from the start of segment i.
func checkCut(t *testing.T, name string, i int, rest string, cut int) {
	t.Helper()
	hasSpace, hasPieceStart := false, false
	for p, r := range rest {
		if p > maxSegment {
			break
		}
		if p == 0 || !isSpace(r) {
			continue
		}
		hasSpace = true
		prev, _ := utf8.DecodeLastRuneInString(rest[:p])
		hasPieceStart = hasPieceStart || startsPiece(prev, r)
	}
	r, _ := utf8.DecodeRuneInString(rest[cut:])
	prev, _ := utf8.DecodeLastRuneInString(rest[:cut])
	switch {
	case hasPieceStart && (!isSpace(r) || !startsPiece(prev, r)):
		t.Errorf("%s: cut after segment %d falls at %q|%q, want before whitespace that starts a piece",
			name, i, prev, r)
	case hasSpace && !isSpace(r):
		t.Errorf("%s: cut after segment %d falls at %q|%q, want before whitespace", name, i, prev, r)
	case !hasSpace && (!utf8.RuneStart(rest[cut]) || cut < maxSegment-utf8.UTFMax):
		t.Errorf("%s: cut after segment %d is at offset %d (%q|%q), want the last rune boundary up to %d",
			name, i, cut, prev, r, maxSegment)
	}
}

func TestPrefixAtRune(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"hello", 10, "hello"},
		{"hello", 5, "hello"},
		{"hello", 3, "hel"},
		{"日本語", 7, "日本"},
		{"日本語", 6, "日本"},
		{"日本語", 5, "日"},
		{"\x80\x80\x80\x80\x80\x80", 5, "\x80\x80\x80\x80\x80"},
	}
	for _, tc := range tests {
		if got := prefixAtRune(tc.in, tc.n); got != tc.want {
			t.Errorf("prefixAtRune(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
