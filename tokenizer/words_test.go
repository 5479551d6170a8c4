package tokenizer

import (
	"errors"
	"slices"
	"testing"
)

func TestCommonWordsList(t *testing.T) {
	t.Parallel()
	if n := len(commonWords); n < 250 {
		t.Errorf("len(commonWords) = %d, want about 300", n)
	}
	seen := make(map[string]bool, len(commonWords))
	for i, w := range commonWords {
		if w == "" {
			t.Errorf("commonWords[%d] is empty", i)
		}
		for _, r := range w {
			if r < 'a' || r > 'z' {
				t.Errorf("commonWords[%d] = %q, want lowercase ASCII letters only", i, w)
				break
			}
		}
		if seen[w] {
			t.Errorf("commonWords[%d] = %q repeats an earlier word", i, w)
		}
		seen[w] = true
	}
}

func TestSingleTokenWords(t *testing.T) {
	t.Parallel()
	both := []string{CL100KBase, O200KBase}
	words, err := SingleTokenWords(len(commonWords), both...)
	if err != nil {
		t.Fatalf("SingleTokenWords(%d, %v) error: %v", len(commonWords), both, err)
	}
	if len(words) < 100 {
		t.Fatalf("SingleTokenWords(%d, %v) returned %d words, want at least 100", len(commonWords), both, len(words))
	}
	for _, enc := range both {
		c := mustNew(t, enc)
		for _, w := range words {
			if got := c.Count(" " + w); got != 1 {
				t.Errorf("%s Count(%q) = %d, want 1", enc, " "+w, got)
			}
		}
	}
	// The result keeps the order of the built-in list.
	last := -1
	for _, w := range words {
		i := slices.Index(commonWords[:], w)
		if i <= last {
			t.Errorf("SingleTokenWords order: %q at list index %d follows index %d", w, i, last)
		}
		last = i
	}
	// Deterministic, and a smaller n returns a prefix of the same words.
	again, err := SingleTokenWords(100, both...)
	if err != nil {
		t.Fatalf("SingleTokenWords(100, %v) error: %v", both, err)
	}
	if !slices.Equal(again, words[:100]) {
		t.Errorf("SingleTokenWords(100, %v) = %v, want the first 100 of %v", both, again, words)
	}
}

func TestSingleTokenWordsLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		n         int
		encodings []string
		want      int
	}{
		{"zero", 0, []string{CL100KBase}, 0},
		{"negative", -5, []string{CL100KBase}, 0},
		{"five", 5, []string{CL100KBase, O200KBase}, 5},
		{"no encodings takes every word", len(commonWords) + 10, nil, len(commonWords)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := SingleTokenWords(tc.n, tc.encodings...)
			if err != nil {
				t.Fatalf("SingleTokenWords(%d, %v) error: %v", tc.n, tc.encodings, err)
			}
			if len(got) != tc.want {
				t.Errorf("SingleTokenWords(%d, %v) returned %d words, want %d", tc.n, tc.encodings, len(got), tc.want)
			}
		})
	}
}

func TestSingleTokenWordsUnknownEncoding(t *testing.T) {
	t.Parallel()
	words, err := SingleTokenWords(10, CL100KBase, "nope")
	if !errors.Is(err, ErrUnknownEncoding) {
		t.Errorf("SingleTokenWords(10, %q, %q) error = %v, want %v", CL100KBase, "nope", err, ErrUnknownEncoding)
	}
	if words != nil {
		t.Errorf("SingleTokenWords with unknown encoding = %v, want nil", words)
	}
}

// TestIsSingleToken checks the filter on texts whose cl100k_base tokens are published:
// "rer" is one token and "hello world" two.
func TestIsSingleToken(t *testing.T) {
	t.Parallel()
	counters := []*Counter{mustNew(t, CL100KBase)}
	tests := []struct {
		text string
		want bool
	}{
		{"rer", true},
		{"hello world", false},
		{"", false},
	}
	for _, tc := range tests {
		t.Run(tc.text, func(t *testing.T) {
			t.Parallel()
			if got := isSingleToken(tc.text, counters); got != tc.want {
				t.Errorf("isSingleToken(%q, cl100k_base) = %v, want %v", tc.text, got, tc.want)
			}
		})
	}
}
