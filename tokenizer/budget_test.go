package tokenizer

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// englishProse returns at least n bytes of English prose: prose and the cookbook messages,
// repeated, with paragraph breaks.
func englishProse(n int) string {
	var sb strings.Builder
	for sb.Len() < n {
		sb.WriteString(prose)
		sb.WriteString("\n\n")
		for _, m := range cookbookMessages {
			sb.WriteString(m.Content)
			sb.WriteString(" ")
		}
		sb.WriteString("\n\n")
	}
	return sb.String()
}

// TestCountSegmentedMatchesWhole compares Count on texts longer than one segment with the
// count of the whole text encoded at once by the underlying tiktoken encoder. Texts whose
// segments are cut where a piece starts must match exactly; a run without whitespace is cut
// inside a piece and may differ by at most one token per cut.
func TestCountSegmentedMatchesWhole(t *testing.T) {
	t.Parallel()
	exact := []struct {
		name, text string
	}{
		{"12 KiB English prose", englishProse(12 << 10)[:12<<10]},
		{"random document seed 3", randomDocument(16<<10, 3)},
		{"random document seed 4", randomDocument(16<<10, 4)},
		{"random document seed 5", randomDocument(16<<10, 5)},
		{"long space runs", strings.Repeat("a"+strings.Repeat(" ", 6000), 2)},
	}
	for _, enc := range Encodings() {
		c := mustNew(t, enc)
		for _, tc := range exact {
			t.Run(enc+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				if len(tc.text) <= maxSegment {
					t.Fatalf("%s is %d bytes, want more than one segment (%d)", tc.name, len(tc.text), maxSegment)
				}
				want := len(c.tk.EncodeOrdinary(tc.text))
				if got := c.Count(tc.text); got != want {
					t.Errorf("%s Count(%s, %d bytes, %d segments) = %d, want %d (whole-text encode)",
						enc, tc.name, len(tc.text), len(segments(tc.text, maxSegment)), got, want)
				}
			})
		}
	}
	approximate := []struct {
		name, text string
	}{
		{"12 KiB of x", strings.Repeat("x", 12<<10)},
		{"12 KiB of base64", randomBase64(12<<10, 6)},
		{"line-break runs after punctuation", strings.Repeat("word."+strings.Repeat("\n", 5000)+"next ", 3)},
	}
	c := mustNew(t, CL100KBase)
	for _, tc := range approximate {
		t.Run("approximate/"+tc.name, func(t *testing.T) {
			t.Parallel()
			cuts := len(segments(tc.text, maxSegment)) - 1
			want := len(c.tk.EncodeOrdinary(tc.text))
			got := c.Count(tc.text)
			if diff := got - want; diff < -cuts || diff > cuts {
				t.Errorf("Count(%s) = %d, want %d (whole-text encode) within %d, one per cut", tc.name, got, want, cuts)
			}
			t.Logf("Count(%s) = %d, whole-text encode = %d, %d cuts", tc.name, got, want, cuts)
		})
	}
}

// TestCountLongRun counts 1 MiB without whitespace, the input whose cost used to grow with
// the square of its length. Every segment is maxSegment bytes of "x", so the count must be
// maxExact/maxSegment times the whole-text encode of one such segment. (How long it takes is not asserted: the machines
// that run the tests are shared and noisy; TestSegments checks the segmentation instead.)
func TestCountLongRun(t *testing.T) {
	t.Parallel()
	c := mustNew(t, CL100KBase)
	text := strings.Repeat("x", maxExact)
	want := maxExact / maxSegment * len(c.tk.EncodeOrdinary(text[:maxSegment]))
	if got := c.Count(text); got != want {
		t.Errorf("Count(1 MiB of x) = %d, want %d (%d × encode(%d bytes of x))", got, want, maxExact/maxSegment, maxSegment)
	}
}

// TestCountExtrapolates checks that Count of a text longer than 1 MiB encodes its first 1 MiB
// and scales that count by length: 5 MiB counts five times the first 1 MiB, within 1%. The
// Japanese text is 3 bytes a rune, so its first 1 MiB is cut at a rune boundary just short of
// 1 MiB and the scaling is not exactly 5.
func TestCountExtrapolates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, encoding, text string
	}{
		{"base64", CL100KBase, randomBase64(5*maxExact, 7)},
		{"prose", CL100KBase, englishProse(5 * maxExact)},
		{"Japanese", CL100KBase, strings.Repeat("お誕生日 おめでとう ", 5*maxExact/29+1)},
		{"prose", O200KBase, englishProse(5 * maxExact)},
	}
	for _, tc := range tests {
		t.Run(tc.encoding+"/"+tc.name, func(t *testing.T) {
			t.Parallel()
			c := mustNew(t, tc.encoding)
			text := prefixAtRune(tc.text, 5*maxExact)
			first := c.Count(prefixAtRune(text, maxExact))
			got := c.CountBytes([]byte(text))
			if want := 5 * first; math.Abs(float64(got-want)) > 0.01*float64(want) {
				t.Errorf("%s Count(5 MiB of %s) = %d, want 5 × Count(first 1 MiB) = %d within 1%%",
					tc.encoding, tc.name, got, want)
			}
		})
	}
}

// TestCountEstimatesTail shows that text past the first 1 MiB is estimated, not encoded: a
// tail of spaces, which would encode to far fewer tokens per byte than the prose before it,
// still counts at the prose's rate.
func TestCountEstimatesTail(t *testing.T) {
	t.Parallel()
	c := mustNew(t, CL100KBase)
	head := englishProse(maxExact)[:maxExact]
	tail := strings.Repeat(" ", maxExact)
	headCount := c.Count(head)
	if got, want := c.Count(head+tail), 2*headCount; got != want {
		t.Errorf("Count(1 MiB of prose + 1 MiB of spaces) = %d, want 2 × Count(prose) = %d", got, want)
	}
}

// TestCountMessagesSharedBudget checks that CountMessages bounds its work across messages:
// with several large messages, the result stays within 1% of counting each one separately,
// and the text past the first 1 MiB is estimated at the rate of the text before it.
func TestCountMessagesSharedBudget(t *testing.T) {
	t.Parallel()
	c := mustNew(t, CL100KBase)
	text := englishProse(300 << 10)
	msgs := []Message{
		{Role: "system", Content: text},
		{Role: "user", Name: "alice", Content: text},
		{Role: "assistant", Content: text},
		{Role: "user", Content: text},
	}
	separately := tokensReplyPriming
	for _, m := range msgs {
		separately += tokensPerMessage + c.Count(m.Role) + c.Count(m.Content)
		if m.Name != "" {
			separately += c.Count(m.Name) + tokensPerName
		}
	}
	got := c.CountMessages(msgs)
	if math.Abs(float64(got-separately)) > 0.01*float64(separately) {
		t.Errorf("CountMessages(4 messages of %d bytes) = %d, want the sum of separate counts %d within 1%%",
			len(text), got, separately)
	}

	// 1 MiB of prose fills the budget; the digits after it, which would encode to many more
	// tokens per byte, are estimated at the prose's rate.
	head := englishProse(maxExact)[:maxExact]
	digits := strings.Repeat("7", 1000)
	headCount := c.Count(head)
	want := tokensReplyPriming + 2*tokensPerMessage + headCount +
		int(math.Round(float64(headCount)*float64(len(digits))/float64(len(head))))
	if got := c.CountMessages([]Message{{Content: head}, {Content: digits}}); got != want {
		t.Errorf("CountMessages(1 MiB of prose, 1000 digits) = %d, want %d (digits estimated at the prose's rate)",
			got, want)
	}
}

// TestCountTextsSharedBudget checks that CountTexts bounds its work across a sequence: after
// 1 MiB of prose the digits that follow, in separate strings, are estimated at the prose's
// rate rather than each encoded with a budget of its own.
func TestCountTextsSharedBudget(t *testing.T) {
	t.Parallel()
	c := mustNew(t, CL100KBase)
	head := englishProse(maxExact)[:maxExact]
	digits := strings.Repeat("7", 1000)
	headCount := c.Count(head)
	texts := []string{head, digits, digits, digits}
	want := headCount + int(math.Round(float64(headCount)*float64(3*len(digits))/float64(len(head))))
	if got := c.CountTexts(slices.Values(texts)); got != want {
		t.Errorf("CountTexts(1 MiB of prose, 3 × 1000 digits) = %d, want %d (digits estimated)", got, want)
	}
	small := []string{"hello world", "", "the quick brown fox"}
	if got, want := c.CountTexts(slices.Values(small)), c.Count("hello world")+c.Count("the quick brown fox"); got != want {
		t.Errorf("CountTexts(%q) = %d, want the sum of counts %d", small, got, want)
	}
}
