package gateway

import (
	"errors"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

func TestParseRequest(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		kind       routeKind
		body       string
		wantStatus int
		wantParam  string
		want       apiRequest
	}{
		{"chat stream", routeChat, `{"model":"m","stream":true,"max_tokens":7}`, 0, "", apiRequest{model: "m", stream: true, maxTokens: 7}},
		{"client usage", routeChat, `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`, 0, "", apiRequest{model: "m", stream: true, clientUsage: true}},
		{"max_completion_tokens wins", routeChat, `{"model":"m","max_tokens":9,"max_completion_tokens":3}`, 0, "", apiRequest{model: "m", maxTokens: 3}},
		{"null stream_options", routeCompletions, `{"model":"m","stream":false,"stream_options":null}`, 0, "", apiRequest{model: "m"}},
		{"embeddings ignore stream", routeEmbeddings, `{"model":"e","input":"x","stream":"junk"}`, 0, "", apiRequest{model: "e"}},
		{"not json", routeChat, `{"model":`, 400, "", apiRequest{}},
		{"array", routeChat, `[{"model":"m"}]`, 400, "", apiRequest{}},
		{"empty", routeChat, ``, 400, "", apiRequest{}},
		{"no model", routeChat, `{"messages":[]}`, 400, "model", apiRequest{}},
		{"model not string", routeChat, `{"model":5}`, 400, "model", apiRequest{}},
		{"empty model", routeChat, `{"model":""}`, 400, "model", apiRequest{}},
		{"stream string", routeChat, `{"model":"m","stream":"yes"}`, 400, "stream", apiRequest{}},
		{"stream_options string", routeChat, `{"model":"m","stream":true,"stream_options":"x"}`, 400, "stream_options", apiRequest{}},
		{"duplicate model", routeChat, `{"model":"public","messages":[],"model":"secret"}`, 400, "model", apiRequest{}},
		{"escaped model key", routeChat, `{"mod\u0065l":"secret","model":"public"}`, 400, "model", apiRequest{}},
		{"escaped model key alone", routeChat, `{"mod\u0065l":"secret"}`, 400, "model", apiRequest{}},
		{"duplicate stream", routeChat, `{"model":"m","stream":false,"stream":true}`, 400, "stream", apiRequest{}},
		{"duplicate in embeddings", routeEmbeddings, `{"model":"a","input":"x","model":"b"}`, 400, "model", apiRequest{}},
		{"nested model is not the model", routeChat, `{"model":"m","metadata":{"model":"x","model":"y"}}`, 0, "", apiRequest{model: "m"}},
		{"deep but allowed", routeChat, `{"model":"m","x":` + strings.Repeat("[", maxNesting-1) + strings.Repeat("]", maxNesting-1) + `}`, 0, "", apiRequest{model: "m"}},
		{"too deep", routeChat, `{"model":"m","x":` + strings.Repeat("[", maxNesting) + strings.Repeat("]", maxNesting) + `}`, 400, "", apiRequest{}},
		{"brackets in strings do not count", routeChat, `{"model":"m","x":"` + strings.Repeat("[", 4*maxNesting) + `\"{"}`, 0, "", apiRequest{model: "m"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseRequest(c.kind, []byte(c.body))
			if c.wantStatus != 0 {
				var ae *apiError
				if !errors.As(err, &ae) || ae.status != c.wantStatus || ae.param != c.wantParam {
					t.Fatalf("parseRequest(%s) err = %v, want status %d param %q", c.body, err, c.wantStatus, c.wantParam)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseRequest(%s) err = %v, want nil", c.body, err)
			}
			if got.model != c.want.model || got.stream != c.want.stream ||
				got.clientUsage != c.want.clientUsage || got.maxTokens != c.want.maxTokens {
				t.Errorf("parseRequest(%s) = %+v, want %+v", c.body, got, c.want)
			}
		})
	}
}

func TestPatchRequestKeepsOtherBytes(t *testing.T) {
	t.Parallel()
	const vendor = `"guided_json":{"type":"object","properties":{"a":{"type":"number"}}}, "chat_template_kwargs" : {"enable_thinking":false},"tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"logprobs":true,"x_unicode":"h\u00e9llo \ud83d\ude00"`
	cases := []struct {
		name, body, upstream string
		wantUsageInjected    bool
		wantIncludeUsage     bool
	}{
		{"rename only", `{"model":"a",` + vendor + `}`, "b", false, false},
		{"inject usage", `{"model":"a","stream":true,` + vendor + `}`, "a", true, true},
		{"inject into existing stream_options", `{"model":"a","stream":true,"stream_options":{"continuous_usage_stats":true},` + vendor + `}`, "a", true, true},
		{"inject over null", `{"model":"a","stream":true,"stream_options":null,` + vendor + `}`, "a", true, true},
		{"client asked", `{"model":"a","stream":true,"stream_options":{"include_usage":true},` + vendor + `}`, "a", false, true},
		{"trailing white space kept", "{\"model\":\"a\",\"stream\":true,\n" + vendor + "\n}\n \r\n", "b", true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			req, err := parseRequest(routeChat, []byte(c.body))
			if err != nil {
				t.Fatalf("parseRequest: %v", err)
			}
			out, injected, err := patchRequest(req, c.upstream)
			if err != nil {
				t.Fatalf("patchRequest: %v", err)
			}
			if injected != c.wantUsageInjected {
				t.Errorf("injected = %v, want %v", injected, c.wantUsageInjected)
			}
			if got := gjson.GetBytes(out, "model").Str; got != c.upstream {
				t.Errorf("model = %q, want %q", got, c.upstream)
			}
			if got := gjson.GetBytes(out, "stream_options.include_usage").Bool(); got != c.wantIncludeUsage {
				t.Errorf("include_usage = %v, want %v in %s", got, c.wantIncludeUsage, out)
			}
			for _, key := range []string{"guided_json", "chat_template_kwargs", "tools", "logprobs", "x_unicode"} {
				if got, want := gjson.GetBytes(out, key).Raw, gjson.Get(c.body, key).Raw; got != want {
					t.Errorf("%s = %s, want byte-identical %s", key, got, want)
				}
			}
			if so := gjson.Get(c.body, "stream_options.continuous_usage_stats"); so.Exists() &&
				gjson.GetBytes(out, "stream_options.continuous_usage_stats").Raw != so.Raw {
				t.Errorf("stream_options.continuous_usage_stats lost: %s", out)
			}
			if !c.wantUsageInjected && c.upstream == "a" && string(out) != c.body {
				t.Errorf("body changed with nothing to patch:\n got %s\nwant %s", out, c.body)
			}
			if tail := c.body[len(strings.TrimRight(c.body, " \t\r\n")):]; !strings.HasSuffix(string(out), "}"+tail) {
				t.Errorf("patched body %q lost the trailing %q", out, tail)
			}
		})
	}
}

// TestParseRequestSurvivesDeepNesting: a body that nests millions deep, well under the size
// limit, gets a 400; validating it recursively would overflow the stack and kill the process.
func TestParseRequestSurvivesDeepNesting(t *testing.T) {
	t.Parallel()
	const depth = 16 << 20 // under max_body_bytes; 4M levels did not overflow, 12M did
	body := []byte(`{"model":"m","a":` + strings.Repeat("[", depth))
	_, err := parseRequest(routeChat, body)
	var ae *apiError
	if !errors.As(err, &ae) || ae.status != 400 {
		t.Errorf("parseRequest(%d-deep body) = %v, want a 400", depth, err)
	}
}
