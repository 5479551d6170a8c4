package tokenizer

import "testing"

func TestEncodingForModel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		model, want string
	}{
		{"gpt-4o", O200KBase},
		{"gpt-4o-mini", O200KBase},
		{"gpt-4o-2024-08-06", O200KBase},
		{"chatgpt-4o-latest", O200KBase},
		{"gpt-4.1", O200KBase},
		{"gpt-4.1-nano", O200KBase},
		{"gpt-4.5-preview", O200KBase},
		{"gpt-5", O200KBase},
		{"gpt-5-mini", O200KBase},
		{"gpt-5.1", O200KBase},
		{"o1", O200KBase},
		{"o1-preview", O200KBase},
		{"o3-mini", O200KBase},
		{"o4-mini", O200KBase},
		{"openai/gpt-oss-120b", O200KBase},
		{"gpt-oss-20b", O200KBase},
		{"ft:gpt-4o-mini:acme::abc123", O200KBase},
		{"GPT-4o", O200KBase},
		{"gpt-4", CL100KBase},
		{"gpt-4-0613", CL100KBase},
		{"gpt-4-turbo", CL100KBase},
		{"gpt-4-32k", CL100KBase},
		{"gpt-3.5-turbo", CL100KBase},
		{"gpt-3.5-turbo-0125", CL100KBase},
		{"text-embedding-3-small", CL100KBase},
		{"meta-llama/Llama-3.1-70B-Instruct", CL100KBase},
		{"llama-70b", CL100KBase},
		{"o10-fake", CL100KBase},
		{"o1x", CL100KBase},
		{"gpt-50", CL100KBase},
		{"", CL100KBase},
	}
	for _, tc := range tests {
		t.Run(tc.model, func(t *testing.T) {
			t.Parallel()
			if got := EncodingForModel(tc.model); got != tc.want {
				t.Errorf("EncodingForModel(%q) = %q, want %q", tc.model, got, tc.want)
			}
		})
	}
}

// TestEncodingForModelIsLoadable checks that every name EncodingForModel returns is one that
// New accepts.
func TestEncodingForModelIsLoadable(t *testing.T) {
	t.Parallel()
	for _, model := range []string{"gpt-4o", "gpt-4", "llama-70b"} {
		enc := EncodingForModel(model)
		if _, err := New(enc); err != nil {
			t.Errorf("New(EncodingForModel(%q) = %q) error: %v", model, enc, err)
		}
	}
}
