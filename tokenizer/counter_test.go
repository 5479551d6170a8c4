package tokenizer

import (
	"errors"
	"slices"
	"sync"
	"testing"
)

// publishedEncodings lists token IDs that OpenAI publishes for its encodings: the cookbook
// "How to count tokens with tiktoken" (sections 3 and 5) and tiktoken's tests/test_encoding.py.
// The expected count of each text is the length of its ID list.
var publishedEncodings = []struct {
	name, encoding, text string
	ids                  []int
}{
	{"cl100k hello world", CL100KBase, "hello world", []int{15339, 1917}},
	{"cl100k tiktoken is great", CL100KBase, "tiktoken is great!", []int{83, 1609, 5963, 374, 2294, 0}},
	{"cl100k antidisestablishmentarianism", CL100KBase, "antidisestablishmentarianism", []int{519, 85342, 34500, 479, 8997, 2191}},
	{"cl100k arithmetic", CL100KBase, "2 + 2 = 4", []int{17, 489, 220, 17, 284, 220, 19}},
	{"cl100k japanese", CL100KBase, "お誕生日おめでとう", []int{33334, 45918, 243, 21990, 9080, 33334, 62004, 16556, 78699}},
	{"cl100k rer", CL100KBase, "rer", []int{38149}},
	{"cl100k quote rer", CL100KBase, "'rer", []int{2351, 81}},
	{"cl100k newline space", CL100KBase, "today\n ", []int{31213, 198, 220}},
	{"cl100k newline space newline", CL100KBase, "today\n \n", []int{31213, 27907}},
	{"cl100k newline two spaces newline", CL100KBase, "today\n  \n", []int{31213, 14211}},
	{"cl100k next line control", CL100KBase, " \u0085" + "0", []int{220, 126, 227, 15}},
	{"cl100k emoji", CL100KBase, "👍", []int{9468, 239, 235}},
	{"o200k tiktoken is great", O200KBase, "tiktoken is great!", []int{83, 8251, 2488, 382, 2212, 0}},
	{"o200k antidisestablishmentarianism", O200KBase, "antidisestablishmentarianism", []int{493, 129901, 376, 160388, 21203, 2367}},
	{"o200k arithmetic", O200KBase, "2 + 2 = 4", []int{17, 659, 220, 17, 314, 220, 19}},
	{"o200k japanese", O200KBase, "お誕生日おめでとう", []int{8930, 9697, 243, 128225, 8930, 17693, 4344, 48669}},
	{"p50k hello world", P50KBase, "hello world", []int{31373, 995}},
	{"p50k antidisestablishmentarianism", P50KBase, "antidisestablishmentarianism", []int{415, 29207, 44390, 3699, 1042}},
	{"p50k arithmetic", P50KBase, "2 + 2 = 4", []int{17, 1343, 362, 796, 604}},
	{"r50k hello world", R50KBase, "hello world", []int{31373, 995}},
	{"r50k japanese", R50KBase, "お誕生日おめでとう", []int{2515, 232, 45739, 243, 37955, 33768, 98, 2515, 232, 1792, 223, 30640, 30201, 29557}},
	{"r50k nine zeros", R50KBase, "000000000", []int{10535, 830}},
	{"r50k sixteen zeros", R50KBase, "0000000000000000", []int{25645}},
	{"r50k seventeen zeros", R50KBase, "00000000000000000", []int{8269, 10535, 830}},
}

// mustNew returns a Counter for encoding or stops the test.
func mustNew(t testing.TB, encoding string) *Counter {
	t.Helper()
	c, err := New(encoding)
	if err != nil {
		t.Fatalf("New(%q) error: %v", encoding, err)
	}
	return c
}

func TestCountPublishedExamples(t *testing.T) {
	t.Parallel()
	for _, tc := range publishedEncodings {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := mustNew(t, tc.encoding)
			if got := c.tk.EncodeOrdinary(tc.text); !slices.Equal(got, tc.ids) {
				t.Errorf("%s encode(%q) = %v, want %v", tc.encoding, tc.text, got, tc.ids)
			}
			if got, want := c.Count(tc.text), len(tc.ids); got != want {
				t.Errorf("%s Count(%q) = %d, want %d", tc.encoding, tc.text, got, want)
			}
			if got, want := c.CountBytes([]byte(tc.text)), len(tc.ids); got != want {
				t.Errorf("%s CountBytes(%q) = %d, want %d", tc.encoding, tc.text, got, want)
			}
		})
	}
}

func TestCountEmpty(t *testing.T) {
	t.Parallel()
	for _, enc := range Encodings() {
		t.Run(enc, func(t *testing.T) {
			t.Parallel()
			c := mustNew(t, enc)
			if got := c.Count(""); got != 0 {
				t.Errorf("%s Count(%q) = %d, want 0", enc, "", got)
			}
			if got := c.CountBytes(nil); got != 0 {
				t.Errorf("%s CountBytes(nil) = %d, want 0", enc, got)
			}
		})
	}
}

// TestCountSpecialTokensAsText checks that special tokens in the input are counted as the
// ordinary text they spell, never as the special token and never with a panic. tiktoken
// encodes "hello <|endoftext|>" as [15339, 220, 100257] in cl100k_base only when special
// tokens are allowed (tests/test_encoding.py).
func TestCountSpecialTokensAsText(t *testing.T) {
	t.Parallel()
	const endOfText = 100257
	c := mustNew(t, CL100KBase)
	for _, in := range []string{"hello <|endoftext|>", "<|endoftext|> hello <|fim_prefix|> there <|fim_middle|>"} {
		ids := c.tk.EncodeOrdinary(in)
		if slices.Contains(ids, endOfText) {
			t.Errorf("encode(%q) = %v, want no special token %d", in, ids, endOfText)
		}
		if got := c.Count(in); got <= 3 {
			t.Errorf("Count(%q) = %d, want more than 3 (special tokens spelled out as text)", in, got)
		}
	}
}

// TestCountBytesDoesNotRetain reuses a buffer after CountBytes: counts must stay correct.
func TestCountBytesDoesNotRetain(t *testing.T) {
	t.Parallel()
	c := mustNew(t, CL100KBase)
	buf := []byte("hello world")
	if got := c.CountBytes(buf); got != 2 {
		t.Fatalf("CountBytes(%q) = %d, want 2", buf, got)
	}
	copy(buf, "rer\x00\x00\x00\x00\x00\x00\x00\x00")
	buf = buf[:3]
	if got := c.CountBytes(buf); got != 1 {
		t.Errorf("CountBytes(%q) = %d, want 1", buf, got)
	}
	if got := c.Count("hello world"); got != 2 {
		t.Errorf("Count(%q) after buffer reuse = %d, want 2", "hello world", got)
	}
}

func TestNewUnknownEncoding(t *testing.T) {
	t.Parallel()
	for _, enc := range []string{"", "gpt2", "p50k_edit", "o200k_harmony", "CL100K_BASE", "cl100k", "llama3"} {
		t.Run(enc, func(t *testing.T) {
			t.Parallel()
			c, err := New(enc)
			if !errors.Is(err, ErrUnknownEncoding) {
				t.Errorf("New(%q) error = %v, want %v", enc, err, ErrUnknownEncoding)
			}
			if c != nil {
				t.Errorf("New(%q) = %v, want nil Counter", enc, c)
			}
		})
	}
}

func TestNewSharesLoadedEncoding(t *testing.T) {
	t.Parallel()
	for _, enc := range Encodings() {
		t.Run(enc, func(t *testing.T) {
			t.Parallel()
			const callers = 8
			counters := make([]*Counter, callers)
			var wg sync.WaitGroup
			for i := range callers {
				wg.Go(func() {
					c, err := New(enc)
					if err != nil {
						t.Errorf("New(%q) error: %v", enc, err)
						return
					}
					counters[i] = c
				})
			}
			wg.Wait()
			for i, c := range counters {
				if c == nil {
					continue
				}
				if got := c.Encoding(); got != enc {
					t.Errorf("New(%q).Encoding() = %q, want %q", enc, got, enc)
				}
				if c.tk != counters[0].tk {
					t.Errorf("New(%q) #%d has its own encoder, want the one loaded first", enc, i)
				}
			}
		})
	}
}

func TestEncodings(t *testing.T) {
	t.Parallel()
	want := []string{CL100KBase, O200KBase, P50KBase, R50KBase}
	got := Encodings()
	if !slices.Equal(got, want) {
		t.Fatalf("Encodings() = %v, want %v", got, want)
	}
	got[0] = "changed"
	if again := Encodings(); !slices.Equal(again, want) {
		t.Errorf("Encodings() after caller changed its slice = %v, want %v", again, want)
	}
}

// TestCountConcurrent counts from many goroutines at once; run it with -race.
func TestCountConcurrent(t *testing.T) {
	t.Parallel()
	counters := map[string]*Counter{
		CL100KBase: mustNew(t, CL100KBase),
		O200KBase:  mustNew(t, O200KBase),
	}
	const goroutines, rounds = 32, 20
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for r := range rounds {
				tc := publishedEncodings[(g+r)%len(publishedEncodings)]
				c, ok := counters[tc.encoding]
				if !ok {
					continue
				}
				if got, want := c.Count(tc.text), len(tc.ids); got != want {
					t.Errorf("goroutine %d: %s Count(%q) = %d, want %d", g, tc.encoding, tc.text, got, want)
				}
				if got, want := c.CountBytes([]byte(tc.text)), len(tc.ids); got != want {
					t.Errorf("goroutine %d: %s CountBytes(%q) = %d, want %d", g, tc.encoding, tc.text, got, want)
				}
			}
		})
	}
	wg.Wait()
}
