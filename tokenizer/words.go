package tokenizer

import "fmt"

// commonWords is a fixed list of common English words, lowercase ASCII, no repeats.
// SingleTokenWords filters it; its order is the order of SingleTokenWords' result.
var commonWords = [...]string{
	"the", "of", "and", "to", "in", "is", "that", "for", "it", "as",
	"was", "with", "be", "by", "on", "not", "he", "this", "are", "or",
	"his", "from", "at", "which", "but", "have", "an", "had", "they", "you",
	"were", "their", "one", "all", "we", "can", "her", "has", "there", "been",
	"if", "more", "when", "will", "would", "who", "so", "no", "she", "other",
	"its", "may", "these", "what", "them", "than", "some", "him", "time", "into",
	"only", "do", "first", "any", "my", "new", "now", "such", "like", "our",
	"over", "man", "me", "even", "most", "made", "after", "also", "did", "many",
	"before", "must", "through", "back", "years", "where", "much", "your", "way", "well",
	"down", "should", "because", "each", "just", "those", "people", "how", "too", "little",
	"state", "good", "very", "make", "world", "still", "own", "see", "men", "work",
	"long", "get", "here", "between", "both", "life", "being", "under", "never", "day",
	"same", "another", "know", "while", "last", "might", "us", "great", "old", "year",
	"off", "come", "since", "against", "go", "came", "right", "used", "take", "three",
	"small", "large", "next", "early", "young", "important", "few", "public", "bad", "able",
	"house", "water", "light", "night", "point", "city", "play", "line", "place", "home",
	"hand", "part", "room", "land", "story", "word", "music", "power", "game", "book",
	"eye", "friend", "head", "face", "door", "money", "paper", "food", "school", "family",
	"group", "country", "problem", "number", "system", "program", "question", "government", "company", "service",
	"report", "change", "order", "market", "table", "street", "rest", "air", "fire", "river",
	"tree", "road", "car", "sun", "moon", "sea", "sky", "rain", "snow", "wind",
	"stone", "field", "garden", "window", "letter", "picture", "voice", "heart", "mind", "body",
	"say", "said", "tell", "ask", "give", "find", "think", "look", "want", "use",
	"call", "try", "need", "feel", "become", "leave", "put", "mean", "keep", "let",
	"begin", "seem", "help", "talk", "turn", "start", "show", "hear", "run", "move",
	"live", "believe", "bring", "happen", "write", "sit", "stand", "lose", "pay", "meet",
	"learn", "lead", "understand", "watch", "follow", "stop", "create", "speak", "read", "spend",
	"grow", "open", "walk", "win", "offer", "remember", "love", "consider", "appear", "buy",
	"wait", "serve", "die", "send", "build", "stay", "fall", "cut", "reach", "kill",
	"high", "big", "different", "real", "best", "better", "sure", "free", "true", "full",
	"special", "easy", "clear", "recent", "certain", "personal", "simple", "red", "green", "blue",
	"black", "white", "short", "low", "late", "hard", "major", "strong", "possible", "whole",
	"again", "always", "often", "together", "already", "almost", "later", "perhaps", "quite", "ever",
}

// SingleTokenWords returns up to n common English words (lowercase, ASCII) such that " "+word
// is exactly one token in every encoding named in encodings. The words come from a fixed
// built-in list of about 330 words, in that list's order, so the result is deterministic.
// With no encodings every word qualifies; n <= 0 returns an empty slice. An unknown encoding
// returns an error wrapping ErrUnknownEncoding.
//
// A simulated backend can build its output from these words and know that each word it
// sends, with its leading space, is exactly one token to whoever counts it.
func SingleTokenWords(n int, encodings ...string) ([]string, error) {
	counters := make([]*Counter, 0, len(encodings))
	for _, enc := range encodings {
		c, err := New(enc)
		if err != nil {
			return nil, fmt.Errorf("single-token words: %w", err)
		}
		counters = append(counters, c)
	}
	words := make([]string, 0, max(0, min(n, len(commonWords))))
	for _, w := range commonWords {
		if len(words) >= n {
			break
		}
		if isSingleToken(" "+w, counters) {
			words = append(words, w)
		}
	}
	return words, nil
}

// isSingleToken reports whether text is exactly one token for every counter.
func isSingleToken(text string, counters []*Counter) bool {
	for _, c := range counters {
		if c.Count(text) != 1 {
			return false
		}
	}
	return true
}
