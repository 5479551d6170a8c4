package gateway

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// routeKind says which OpenAI endpoint a request came in on.
type routeKind uint8

const (
	routeChat routeKind = iota
	routeCompletions
	routeEmbeddings
)

// path is the route's path, used as the route label: a bounded value.
func (k routeKind) path() string {
	switch k {
	case routeChat:
		return "/v1/chat/completions"
	case routeCompletions:
		return "/v1/completions"
	default:
		return "/v1/embeddings"
	}
}

// operation is the route's GenAI operation name (OpenTelemetry semantic conventions).
func (k routeKind) operation() string {
	switch k {
	case routeChat:
		return "chat"
	case routeCompletions:
		return "text_completion"
	default:
		return "embeddings"
	}
}

// apiRequest is what the gateway reads from a request body, once. Every other field stays in
// body untouched.
type apiRequest struct {
	kind   routeKind
	body   []byte
	model  string
	stream bool
	// clientUsage is true when the client itself set stream_options.include_usage.
	clientUsage bool
	// maxTokens is max_completion_tokens, else max_tokens; 0 when neither is set.
	maxTokens int64
}

// maxNesting bounds how deeply a request body may nest arrays and objects. gjson validates
// and reads recursively, so an unbounded depth would let one body overflow the stack, which
// kills the process; real requests (JSON schemas in tools included) stay far below it.
const maxNesting = 512

// parseRequest validates the fields the gateway acts on and reads them. It rejects a body that
// is not a JSON object, nests too deeply, lacks a model, names a key the gateway acts on twice
// or with escapes (the gateway and the backend could then read different values), or has a
// stream flag or stream_options of the wrong type; everything else is the backend's to judge.
func parseRequest(kind routeKind, body []byte) (apiRequest, error) {
	r := apiRequest{kind: kind, body: body}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return r, errInvalid("", "The request body must be a JSON object.")
	}
	if !shallowerThan(body, maxNesting) {
		return r, errInvalid("", "The request body nests arrays and objects more than %d deep.", maxNesting)
	}
	if !gjson.ValidBytes(body) {
		return r, errInvalid("", "The request body must be a JSON object.")
	}
	var (
		model, stream, streamOptions, maxTokens, maxCompletion gjson.Result
		err                                                    error
	)
	gjson.Parse(unsafeString(body)).ForEach(func(k, v gjson.Result) bool {
		var slot *gjson.Result
		switch k.Str {
		case "model":
			slot = &model
		case "stream":
			slot = &stream
		case "stream_options":
			slot = &streamOptions
		case "max_tokens":
			slot = &maxTokens
		case "max_completion_tokens":
			slot = &maxCompletion
		default:
			return true
		}
		if slot.Exists() || len(k.Raw) != len(k.Str)+2 {
			err = errInvalid(k.Str, "The key %q appears more than once or with escapes.", k.Str)
			return false
		}
		*slot = v
		return true
	})
	if err != nil {
		return r, err
	}
	if model.Type != gjson.String || model.Str == "" {
		return r, errInvalid("model", "You must provide a model parameter as a non-empty string.")
	}
	r.model = strings.Clone(model.Str) // a copy: it must not alias the body it was read from
	if kind == routeEmbeddings {
		return r, nil
	}
	switch stream.Type {
	case gjson.True:
		r.stream = true
	case gjson.False, gjson.Null:
	default:
		return r, errInvalid("stream", "stream must be a boolean, got %s.", stream.Raw)
	}
	switch so := streamOptions; {
	case !so.Exists() || so.Type == gjson.Null:
	case !so.IsObject():
		return r, errInvalid("stream_options", "stream_options must be an object, got %s.", so.Raw)
	default:
		r.clientUsage = so.Get("include_usage").Type == gjson.True
	}
	for _, v := range []gjson.Result{maxCompletion, maxTokens} {
		if v.Type == gjson.Number {
			r.maxTokens = v.Int()
			break
		}
	}
	return r, nil
}

// shallowerThan reports whether the JSON text b nests arrays and objects at most limit deep.
// It scans without recursion and does not validate.
func shallowerThan(b []byte, limit int) bool {
	depth, inString := 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++ // skip the escaped byte
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			if depth++; depth > limit {
				return false
			}
		case '}', ']':
			depth--
		}
	}
	return true
}

// patchRequest rewrites only the keys the gateway must change: the model name sent upstream,
// and stream_options.include_usage on a stream whose client did not ask for usage, so the
// gateway can count tokens. It reports whether it added include_usage. Every other byte of
// the body stays as the client sent it.
func patchRequest(r apiRequest, upstreamModel string) (body []byte, injectedUsage bool, err error) {
	// sjson drops whatever follows the closing brace when it appends a key, so patch the
	// object alone and put the trailing white space back.
	body = bytes.TrimRight(r.body, " \t\r\n")
	tail := r.body[len(body):]
	patched := false
	if upstreamModel != r.model {
		if body, err = sjson.SetBytes(body, "model", upstreamModel); err != nil {
			return nil, false, fmt.Errorf("set model: %w", err)
		}
		patched = true
	}
	if r.stream && !r.clientUsage {
		if so := gjson.GetBytes(body, "stream_options"); so.Type == gjson.Null {
			body, err = sjson.SetRawBytes(body, "stream_options", []byte(`{"include_usage":true}`))
		} else {
			body, err = sjson.SetBytes(body, "stream_options.include_usage", true)
		}
		if err != nil {
			return nil, false, fmt.Errorf("set stream_options.include_usage: %w", err)
		}
		injectedUsage, patched = true, true
	}
	if !patched {
		return r.body, false, nil
	}
	return append(body, tail...), injectedUsage, nil
}
