package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// chatRequest is the part of a chat completion request the simulator reads.
type chatRequest struct {
	Model               string         `json:"model"`
	Messages            []chatMessage  `json:"messages"`
	Stream              bool           `json:"stream"`
	StreamOptions       *streamOptions `json:"stream_options"`
	MaxTokens           *int           `json:"max_tokens"`
	MaxCompletionTokens *int           `json:"max_completion_tokens"`
	N                   *int           `json:"n"`
}

// chatMessage is one message of a chat request.
type chatMessage struct {
	Role    string         `json:"role"`
	Name    string         `json:"name"`
	Content messageContent `json:"content"`
}

// completionRequest is the part of a legacy completion request the simulator reads.
type completionRequest struct {
	Model         string         `json:"model"`
	Prompt        textInputs     `json:"prompt"`
	Stream        bool           `json:"stream"`
	StreamOptions *streamOptions `json:"stream_options"`
	MaxTokens     *int           `json:"max_tokens"`
	N             *int           `json:"n"`
}

// embeddingRequest is an embeddings request.
type embeddingRequest struct {
	Model          string     `json:"model"`
	Input          textInputs `json:"input"`
	Dimensions     *int       `json:"dimensions"`
	EncodingFormat string     `json:"encoding_format"`
}

// streamOptions are the stream_options of a streaming request.
type streamOptions struct {
	IncludeUsage         bool `json:"include_usage"`
	ContinuousUsageStats bool `json:"continuous_usage_stats"`
}

// messageContent is a message's content: a string, an array of content parts (the text
// parts joined by newlines, as vLLM does), or null.
type messageContent string

// UnmarshalJSON decodes any of the content forms.
func (c *messageContent) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*c = ""
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("decode message content: %w", err)
		}
		*c = messageContent(s)
		return nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &parts); err != nil {
		return errors.New("decode message content: want a string, an array of content parts or null")
	}
	var texts []string
	for _, p := range parts {
		if p.Type == "text" {
			texts = append(texts, p.Text)
		}
	}
	*c = messageContent(strings.Join(texts, "\n"))
	return nil
}

// textInput is one prompt or embedding input.
type textInput struct {
	text   string // the text, or for token ids a canonical spelling of them
	tokens int    // how many token ids it was given as, or -1 for text
}

// textInputs is a prompt or input field: a string, an array of strings, an array of token
// ids or an array of arrays of token ids. null decodes as no inputs.
type textInputs []textInput

// UnmarshalJSON decodes any of the input forms.
func (t *textInputs) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*t = nil
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		*t = textInputs{{text: s, tokens: -1}}
		return nil
	}
	var ss []string
	if json.Unmarshal(b, &ss) == nil {
		*t = make(textInputs, len(ss))
		for i, s := range ss {
			(*t)[i] = textInput{text: s, tokens: -1}
		}
		return nil
	}
	var ids []int
	if json.Unmarshal(b, &ids) == nil {
		*t = textInputs{tokenInput(ids)}
		return nil
	}
	var idss [][]int
	if err := json.Unmarshal(b, &idss); err != nil {
		return errors.New("decode input: want a string, an array of strings, or token ids")
	}
	*t = make(textInputs, len(idss))
	for i, ids := range idss {
		(*t)[i] = tokenInput(ids)
	}
	return nil
}

// tokenInput returns the input given as ids.
func tokenInput(ids []int) textInput {
	var sb strings.Builder
	sb.WriteString("\x00tokens")
	for _, id := range ids {
		sb.WriteByte(',')
		sb.WriteString(strconv.Itoa(id))
	}
	return textInput{text: sb.String(), tokens: len(ids)}
}

// usage is OpenAI's token usage object.
type usage struct {
	PromptTokens     int  `json:"prompt_tokens"`
	CompletionTokens *int `json:"completion_tokens,omitempty"` // absent for embeddings
	TotalTokens      int  `json:"total_tokens"`
}

// newUsage returns the usage of prompt and completion tokens.
func newUsage(prompt, completion int) *usage {
	return &usage{PromptTokens: prompt, CompletionTokens: &completion, TotalTokens: prompt + completion}
}

// chunk is one streamed event of a chat or text completion.
type chunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []chunkChoice `json:"choices"`
	Usage   *usage        `json:"usage,omitempty"`
}

// chunkChoice is one choice of a chunk: Delta for chat, Text for text completions.
type chunkChoice struct {
	Index        int     `json:"index"`
	Delta        *delta  `json:"delta,omitempty"`
	Text         *string `json:"text,omitempty"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

// delta is a chat chunk's message delta.
type delta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

// completion is a non-streaming chat or text completion.
type completion struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []completionChoice `json:"choices"`
	Usage   *usage             `json:"usage,omitempty"`
}

// completionChoice is one choice of a completion: Message for chat, Text for text completions.
type completionChoice struct {
	Index        int      `json:"index"`
	Message      *message `json:"message,omitempty"`
	Text         *string  `json:"text,omitempty"`
	Logprobs     any      `json:"logprobs"`
	FinishReason string   `json:"finish_reason"`
}

// message is a chat completion's answer.
type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// embeddingList is an embeddings response.
type embeddingList struct {
	Object string          `json:"object"`
	Data   []embeddingData `json:"data"`
	Model  string          `json:"model"`
	Usage  *usage          `json:"usage,omitempty"`
}

// embeddingData is one embedding: a float array, or a base64 string of little-endian float32s.
type embeddingData struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"`
}

// modelList is the /v1/models response.
type modelList struct {
	Object string      `json:"object"`
	Data   []modelCard `json:"data"`
}

// modelCard describes one served model.
type modelCard struct {
	ID          string  `json:"id"`
	Object      string  `json:"object"`
	Created     int64   `json:"created"`
	OwnedBy     string  `json:"owned_by"`
	Root        string  `json:"root"`
	Parent      *string `json:"parent"`
	MaxModelLen int     `json:"max_model_len"`
}
