package tokenizer

import "strings"

// o200kFamilies are the OpenAI model families that use o200k_base. A model belongs to a
// family when its name is the family name or starts with it followed by '-', '.' or ':'
// ("gpt-4o-mini", "gpt-5.1", "o3-mini").
var o200kFamilies = []string{
	"gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "gpt-oss",
	"o1", "o3", "o4",
}

// EncodingForModel returns the name of the encoding that OpenAI uses for model: O200KBase for
// the gpt-4o, gpt-4.1, gpt-4.5, gpt-5, gpt-oss and o1/o3/o4 families, and CL100KBase for gpt-4,
// gpt-3.5 and every other name. Self-hosted models use tokenizers of their own, so for them
// cl100k_base is an estimate, which is all the gateway promises.
//
// The match ignores case, a provider prefix up to the last '/' ("openai/gpt-oss-120b") and a
// fine-tune prefix "ft:" ("ft:gpt-4o-mini:org::id").
func EncodingForModel(model string) string {
	name := strings.ToLower(model)
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	name = strings.TrimPrefix(name, "ft:")
	for _, family := range o200kFamilies {
		if inFamily(name, family) {
			return O200KBase
		}
	}
	return CL100KBase
}

// inFamily reports whether name is family or a variant of it: family followed by '-', '.'
// or ':'.
func inFamily(name, family string) bool {
	rest, ok := strings.CutPrefix(name, family)
	if !ok {
		return false
	}
	return rest == "" || rest[0] == '-' || rest[0] == '.' || rest[0] == ':'
}
