package sim

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"math/rand/v2"
)

// wordCount is how many single-token words the simulator draws its text from.
const wordCount = 512

// Seed domains keep text, embedding and error streams apart for equal inputs.
const (
	domainText      = "text"
	domainEmbedding = "embedding"
)

// newRand returns a generator determined by seed and parts.
func newRand(seed uint64, domain string, parts ...string) *rand.Rand {
	h := fnv.New64a()
	write := func(s string) {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		_, _ = h.Write(n[:]) // hash.Hash writes never fail
		_, _ = h.Write([]byte(s))
	}
	write(domain)
	for _, p := range parts {
		write(p)
	}
	return rand.New(rand.NewPCG(h.Sum64(), seed))
}

// wordSource yields one choice's tokens: " "+word, each one tiktoken token.
type wordSource struct {
	rng   *rand.Rand
	words []string
}

// next returns the next token's text.
func (w *wordSource) next() string {
	return " " + w.words[w.rng.IntN(len(w.words))]
}

// embedding returns a unit-length vector of dim floats determined by seed, model and text.
func embedding(seed uint64, model, text string, dim int) []float32 {
	rng := newRand(seed, domainEmbedding, model, text)
	v := make([]float64, dim)
	var sum float64
	for i := range v {
		v[i] = rng.NormFloat64()
		sum += v[i] * v[i]
	}
	norm := math.Sqrt(sum)
	if norm == 0 { // All zeros is next to impossible; stay unit length anyway.
		v[0], norm = 1, 1
	}
	out := make([]float32, dim)
	for i, x := range v {
		out[i] = float32(x / norm)
	}
	return out
}

// float32Bytes encodes v as little-endian float32s, as OpenAI's base64 embeddings do.
func float32Bytes(v []float32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}
