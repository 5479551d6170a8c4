package tokenizer

import "testing"

// cookbookMessages is the example conversation of OpenAI's cookbook "How to count tokens with
// tiktoken", section 6. The cookbook states that the OpenAI API counted 129 prompt tokens for
// it on gpt-3.5-turbo and gpt-4 (cl100k_base) and 124 on gpt-4o and gpt-4o-mini (o200k_base).
var cookbookMessages = []Message{
	{Role: "system", Content: "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
	{Role: "system", Name: "example_user", Content: "New synergies will help drive top-line growth."},
	{Role: "system", Name: "example_assistant", Content: "Things working well together will increase revenue."},
	{Role: "system", Name: "example_user", Content: "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
	{Role: "system", Name: "example_assistant", Content: "Let's talk later when we're less busy about how to do better."},
	{Role: "user", Content: "This late pivot means we don't have time to boil the ocean for the client deliverable."},
}

func TestCountMessagesCookbook(t *testing.T) {
	t.Parallel()
	tests := []struct {
		encoding string
		want     int
	}{
		{CL100KBase, 129},
		{O200KBase, 124},
	}
	for _, tc := range tests {
		t.Run(tc.encoding, func(t *testing.T) {
			t.Parallel()
			c := mustNew(t, tc.encoding)
			if got := c.CountMessages(cookbookMessages); got != tc.want {
				t.Errorf("%s CountMessages(cookbook example, %d messages) = %d, want %d",
					tc.encoding, len(cookbookMessages), got, tc.want)
			}
		})
	}
}

// TestCountMessagesRules checks the per-message overheads on small inputs whose text counts
// are published: "hello world" is 2 tokens and "rer" 1 token in cl100k_base.
func TestCountMessagesRules(t *testing.T) {
	t.Parallel()
	c := mustNew(t, CL100KBase)
	role := c.Count("user")
	tests := []struct {
		name string
		msgs []Message
		want int
	}{
		{"no messages", nil, 3},
		{"one message", []Message{{Role: "user", Content: "hello world"}}, 3 + role + 2 + 3},
		{"empty content", []Message{{Role: "user"}}, 3 + role + 3},
		{"with name", []Message{{Role: "user", Name: "rer", Content: "hello world"}}, 3 + role + 2 + 1 + 1 + 3},
		{"two messages", []Message{{Role: "user", Content: "rer"}, {Role: "user", Content: "hello world"}}, 3 + role + 1 + 3 + role + 2 + 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := c.CountMessages(tc.msgs); got != tc.want {
				t.Errorf("CountMessages(%+v) = %d, want %d", tc.msgs, got, tc.want)
			}
		})
	}
}
