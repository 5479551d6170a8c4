package tokenizer

// Message is one chat message as the gateway sees it. Content is the concatenation of the
// message's text parts; Name is empty when the message has no name.
type Message struct {
	Role    string
	Name    string
	Content string
}

// Per-message overheads of OpenAI's chat format, from the OpenAI cookbook "How to count tokens
// with tiktoken" (the rules of gpt-3.5-turbo-0613 and later, gpt-4 and gpt-4o).
const (
	// tokensPerMessage frames every message: <|start|>{role/name}\n{content}<|end|>\n.
	tokensPerMessage = 3
	// tokensPerName is added when a message carries a name.
	tokensPerName = 1
	// tokensReplyPriming primes the reply: <|start|>assistant<|message|>.
	tokensReplyPriming = 3
)

// CountMessages estimates the prompt tokens of a chat completion request with OpenAI's
// published counting rules: each message costs 3 tokens plus the tokens of its role, content
// and name, a name costs 1 more, and the reply priming adds 3 to the total (so an empty
// conversation counts 3). Tools, images and other non-text parts are not counted.
//
// The texts are counted as Count counts them, with one bound shared by the whole call: once
// 1 MiB of roles, contents and names has been encoded, the rest of the text is not encoded
// but estimated from the tokens per byte of what was, so the cost stays bounded however many
// messages the request carries.
func (c *Counter) CountMessages(msgs []Message) int {
	b := newBudget()
	n := tokensReplyPriming
	for _, m := range msgs {
		n += tokensPerMessage + b.count(c, m.Role) + b.count(c, m.Content)
		if m.Name != "" {
			n += b.count(c, m.Name) + tokensPerName
		}
	}
	return n + b.estimate()
}
