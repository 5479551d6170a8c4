package sim

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"testing"
)

// wireEmbeddings is an embeddings response as the client sees it.
type wireEmbeddings struct {
	Object string `json:"object"`
	Model  string `json:"model"`
	Data   []struct {
		Object    string          `json:"object"`
		Index     int             `json:"index"`
		Embedding json.RawMessage `json:"embedding"`
	} `json:"data"`
	Usage *wireUsage `json:"usage"`
}

// vectors returns the response's embeddings, decoding base64 ones.
func (w wireEmbeddings) vectors(t *testing.T) [][]float32 {
	t.Helper()
	var out [][]float32
	for _, d := range w.Data {
		var v []float32
		if err := json.Unmarshal(d.Embedding, &v); err != nil {
			var s string
			if err := json.Unmarshal(d.Embedding, &s); err != nil {
				t.Fatalf("embedding %s is neither floats nor a string", d.Embedding)
			}
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil || len(b)%4 != 0 {
				t.Fatalf("embedding %q is not base64 of float32s: %v", s, err)
			}
			for i := 0; i < len(b); i += 4 {
				v = append(v, math.Float32frombits(binary.LittleEndian.Uint32(b[i:])))
			}
		}
		out = append(out, v)
	}
	return out
}

func TestEmbeddings(t *testing.T) {
	t.Parallel()
	_, ts := startServer(t, func(c *Config) { c.EmbeddingDim = 16 })
	counter := newCounter(t)
	tests := []struct {
		name       string
		params     string
		count, dim int
		wantPrompt int
	}{
		{name: "string", params: `"input":"hello world"`, count: 1, dim: 16, wantPrompt: counter.Count("hello world")},
		{name: "strings with dimensions", params: `"input":["hello world","bye"],"dimensions":5`, count: 2, dim: 5,
			wantPrompt: counter.Count("hello world") + counter.Count("bye")},
		{name: "token ids", params: `"input":[9906,1917]`, count: 1, dim: 16, wantPrompt: 2},
		{name: "token id lists base64", params: `"input":[[9906],[1917,2]],"encoding_format":"base64"`, count: 2, dim: 16, wantPrompt: 3},
		{name: "float format", params: `"input":"x","encoding_format":"float","dimensions":3`, count: 1, dim: 3, wantPrompt: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := `{"model":"sim-model",` + tt.params + `}`
			raw := post(t, ts, "/v1/embeddings", body, http.StatusOK)
			resp := decodeJSON[wireEmbeddings](t, raw)
			if resp.Object != "list" || resp.Model != "sim-model" || len(resp.Data) != tt.count {
				t.Fatalf("%s: object %q model %q with %d embeddings, want list, sim-model, %d", body, resp.Object, resp.Model, len(resp.Data), tt.count)
			}
			if u := resp.Usage; u == nil || u.PromptTokens != tt.wantPrompt || u.TotalTokens != tt.wantPrompt {
				t.Errorf("%s: usage = %+v, want prompt and total %d", body, u, tt.wantPrompt)
			}
			vecs := resp.vectors(t)
			for i, v := range vecs {
				if resp.Data[i].Index != i || resp.Data[i].Object != "embedding" || len(v) != tt.dim {
					t.Errorf("%s: embedding %d has index %d, object %q, length %d; want %d, embedding, %d",
						body, i, resp.Data[i].Index, resp.Data[i].Object, len(v), i, tt.dim)
				}
				var sum float64
				for _, x := range v {
					sum += float64(x) * float64(x)
				}
				if math.Abs(math.Sqrt(sum)-1) > 1e-5 {
					t.Errorf("%s: embedding %d has length %v, want 1", body, i, math.Sqrt(sum))
				}
			}
			if again := decodeJSON[wireEmbeddings](t, post(t, ts, "/v1/embeddings", body, http.StatusOK)).vectors(t); fmt.Sprint(again) != fmt.Sprint(vecs) {
				t.Errorf("%s: second answer %v differs from first %v", body, again, vecs)
			}
			if len(vecs) == 2 && slices.Equal(vecs[0], vecs[1]) {
				t.Errorf("%s: different inputs gave equal embeddings %v", body, vecs[0])
			}
		})
	}
}

func TestEmbeddingsBase64MatchesFloats(t *testing.T) {
	t.Parallel()
	_, ts := startServer(t, nil)
	const params = `"model":"sim-model","input":["a cat","a dog"],"dimensions":32`
	floats := decodeJSON[wireEmbeddings](t, post(t, ts, "/v1/embeddings", `{`+params+`}`, http.StatusOK)).vectors(t)
	raw := post(t, ts, "/v1/embeddings", `{`+params+`,"encoding_format":"base64"}`, http.StatusOK)
	b64 := decodeJSON[wireEmbeddings](t, raw).vectors(t)
	if len(floats) != 2 || fmt.Sprint(floats) != fmt.Sprint(b64) {
		t.Errorf("base64 embeddings %v, float embeddings %v; want equal", b64, floats)
	}
}
