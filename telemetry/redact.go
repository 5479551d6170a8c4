package telemetry

import (
	"net/netip"
	"regexp"
	"strings"
)

// Redaction markers, which replace what Redact finds.
const (
	markEmail = "[REDACTED:email]"
	markPhone = "[REDACTED:phone]"
	markCard  = "[REDACTED:card]"
	markIP    = "[REDACTED:ip]"
	markKey   = "[REDACTED:key]"
)

// keyPattern is one shape of key or token. needle is a literal every match contains; the
// regexp runs only on text that has it. accept, when set, vets each match.
type keyPattern struct {
	needle string
	re     *regexp.Regexp
	accept func(match string) bool
}

// keyPatterns are the key-shaped strings Redact removes, a constant table compiled once. Each
// regexp starts with a literal, which the regexp package finds with a substring search, and
// RE2 matching is linear in the input.
var keyPatterns = []keyPattern{
	{needle: "sk-", re: regexp.MustCompile(`sk-[A-Za-z0-9_-]{20,}`)},             // OpenAI, Anthropic: sk-proj-…, sk-ant-…
	{needle: "sk_", re: regexp.MustCompile(`sk_(?:live|test)_[A-Za-z0-9]{16,}`)}, // Stripe
	{needle: "earer", re: regexp.MustCompile(`[Bb]earer[ \t]+[A-Za-z0-9._~+/=-]{8,}`), accept: tokenLike},
	{needle: "eyJ", re: regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`)}, // JWT
	{needle: "AKIA", re: regexp.MustCompile(`AKIA[0-9A-Z]{16}`)},                                       // AWS access key
	{needle: "ASIA", re: regexp.MustCompile(`ASIA[0-9A-Z]{16}`)},                                       // AWS temporary key
	{needle: "gh", re: regexp.MustCompile(`gh[pousr]_[A-Za-z0-9]{30,}`)},                               // GitHub
	{needle: "github_pat_", re: regexp.MustCompile(`github_pat_[A-Za-z0-9_]{22,}`)},                    // GitHub fine-grained
	{needle: "xox", re: regexp.MustCompile(`xox[abposr]-[A-Za-z0-9-]{10,}`)},                           // Slack
	{needle: "AIza", re: regexp.MustCompile(`AIza[0-9A-Za-z_-]{35}`)},                                  // Google API key
	{needle: "hf_", re: regexp.MustCompile(`hf_[A-Za-z0-9]{30,}`)},                                     // Hugging Face
	{needle: "PRIVATE KEY-----", re: regexp.MustCompile(
		`-----BEGIN[A-Z ]*PRIVATE KEY-----(?s:.*?)-----END[A-Z ]*PRIVATE KEY-----`)}, // PEM
}

// tokenLike accepts "Bearer <token>" when the token has a digit or punctuation or is long, so
// that prose such as "bearer authentication" stays.
func tokenLike(m string) bool {
	tok := strings.TrimLeft(m[len("Bearer"):], " \t")
	return len(tok) >= 20 || strings.ContainsAny(tok, "0123456789._~+/=-")
}

// Redact returns s with personal data and secrets replaced by markers:
// [REDACTED:key] for key-shaped strings (sk-… API keys, Bearer tokens, JWTs, AWS, GitHub,
// Slack, Google and Hugging Face keys, PEM private keys), [REDACTED:email] for e-mail
// addresses, [REDACTED:ip] for IPv4 and IPv6 addresses, [REDACTED:card] for payment card
// numbers (13 to 19 digits, optionally grouped by spaces or dashes, that pass the Luhn check)
// and [REDACTED:phone] for phone numbers (+CC international forms; national forms written
// with a leading 0 or as the North American 3-3-4 groups). Ordinary numbers, dates, years,
// prices and version strings stay. It runs in time linear in len(s) and returns s itself when
// there is nothing to redact.
func Redact(s string) string {
	s = redactKeys(s)
	s = redactEmails(s)
	s = redactIPv6(s)
	return redactNumbers(s)
}

// span is a part of the input to replace by mark.
type span struct {
	start, end int
	mark       string
}

// replaceSpans returns s with each span, in order and not overlapping, replaced by its mark.
func replaceSpans(s string, spans []span) string {
	if len(spans) == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	last := 0
	for _, sp := range spans {
		b.WriteString(s[last:sp.start])
		b.WriteString(sp.mark)
		last = sp.end
	}
	b.WriteString(s[last:])
	return b.String()
}

func redactKeys(s string) string {
	for _, p := range keyPatterns {
		if !strings.Contains(s, p.needle) {
			continue
		}
		var spans []span
		for _, m := range p.re.FindAllStringIndex(s, -1) {
			if m[0] > 0 && isWordByte(s[m[0]-1]) && s[m[0]] != '-' {
				continue // inside a word, such as "task-…"
			}
			if p.accept != nil && !p.accept(s[m[0]:m[1]]) {
				continue
			}
			spans = append(spans, span{m[0], m[1], markKey})
		}
		s = replaceSpans(s, spans)
	}
	return s
}

// Byte classes of the scanners, a constant table: one lookup per byte on the hot loops.
const (
	clsDigit  = 1 << iota // 0-9
	clsLetter             // A-Z a-z
	clsHex                // 0-9 A-F a-f
	clsWord               // letters, digits, _
	clsLocal              // e-mail local part: word bytes and . % + -
	clsDomain             // domain name: letters, digits, . -
	clsNumber             // number words: digits and + ( ) . -
)

var byteClass = func() (t [256]uint8) {
	for c := range 256 {
		b := byte(c)
		digit, letter := b >= '0' && b <= '9', b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
		set := func(cls uint8, ok bool) {
			if ok {
				t[c] |= cls
			}
		}
		set(clsDigit, digit)
		set(clsLetter, letter)
		set(clsHex, digit || b >= 'a' && b <= 'f' || b >= 'A' && b <= 'F')
		set(clsWord, digit || letter || b == '_')
		set(clsLocal, digit || letter || strings.IndexByte("_.%+-", b) >= 0)
		set(clsDomain, digit || letter || b == '.' || b == '-')
		set(clsNumber, digit || strings.IndexByte("+().-", b) >= 0)
	}
	return t
}()

func isWordByte(c byte) bool   { return byteClass[c]&clsWord != 0 }
func isDigit(c byte) bool      { return byteClass[c]&clsDigit != 0 }
func isLetter(c byte) bool     { return byteClass[c]&clsLetter != 0 }
func isEmailLocal(c byte) bool { return byteClass[c]&clsLocal != 0 }
func isDomainByte(c byte) bool { return byteClass[c]&clsDomain != 0 }
func isHex(c byte) bool        { return byteClass[c]&clsHex != 0 }
func isNumberByte(c byte) bool { return byteClass[c]&clsNumber != 0 }

// redactEmails finds each '@' and grows the address around it: a local part to the left, and
// to the right the longest run of domain characters that ends in a dot and a top-level domain
// of two letters or more. Each byte is looked at a bounded number of times.
func redactEmails(s string) string {
	var spans []span
	floor := 0 // the left edge of the next local part: past the previous address or '@'
	for i := 0; i < len(s); {
		at := strings.IndexByte(s[i:], '@')
		if at < 0 {
			break
		}
		at += i
		start := at
		for start > floor && isEmailLocal(s[start-1]) {
			start--
		}
		for start < at && s[start] == '.' {
			start++
		}
		end := domainEnd(s, at+1)
		if start < at && end > at+1 {
			spans = append(spans, span{start, end, markEmail})
			i, floor = end, end
			continue
		}
		i, floor = at+1, at+1
	}
	return replaceSpans(s, spans)
}

// domainEnd returns the end of the longest domain name starting at s[from] that has a dot and
// ends in a top-level domain of two letters or more, or from when there is none.
func domainEnd(s string, from int) int {
	best, lastDot, letters := from, -1, 0
	for j := from; j < len(s) && isDomainByte(s[j]); j++ {
		switch c := s[j]; {
		case c == '.':
			if j == from || s[j-1] == '.' {
				return best // an empty label
			}
			lastDot, letters = j, 0
		case isLetter(c):
			letters++
			if lastDot > from && letters >= 2 && letters == j-lastDot {
				best = j + 1
			}
		default:
			letters = -1 << 30 // a digit or '-' in the last label: not a top-level domain
		}
	}
	return best
}

// redactIPv6 finds runs of hex digits, colons and dots with at least two colons and a digit,
// not inside a word, and redacts those that parse as an IPv6 address.
func redactIPv6(s string) string {
	if strings.Count(s, ":") < 2 {
		return s
	}
	var spans []span
	for i := 0; i < len(s); {
		if !isHex(s[i]) && s[i] != ':' {
			i++
			continue
		}
		j := i
		colons, digits := 0, 0
		for j < len(s) && (isHex(s[j]) || s[j] == ':' || s[j] == '.') {
			if s[j] == ':' {
				colons++
			} else if isDigit(s[j]) {
				digits++
			}
			j++
		}
		start, end := i, j
		i = j
		if colons < 2 || digits == 0 || start > 0 && isWordByte(s[start-1]) || end < len(s) && isWordByte(s[end]) {
			continue
		}
		for end > start && s[end-1] == '.' || end > start+2 && s[end-1] == ':' && s[end-2] != ':' {
			end--
		}
		if a, err := netip.ParseAddr(s[start:end]); err == nil && a.Is6() {
			spans = append(spans, span{start, end, markIP})
		}
	}
	return replaceSpans(s, spans)
}

// maxNumberWords bounds how many space-separated groups one phone or card number may span.
const maxNumberWords = 7

// numberWord is one run of digits and number punctuation, trimmed.
type numberWord struct {
	start, end int
	joined     bool // follows the previous word after exactly one space
}

// redactNumbers finds runs of number words (digits with + ( ) . -) separated by single spaces
// and not inside a word, and redacts each IPv4 address, card number and phone number among
// them: from each word, the longest run of up to maxNumberWords words that is one, then past
// it. Each byte is looked at a bounded number of times.
func redactNumbers(s string) string {
	var spans []span
	var words []numberWord
	flush := func() {
		for i := 0; i < len(words); {
			i = classifyFrom(s, words, i, &spans)
		}
		words = words[:0]
	}
	for i := 0; i < len(s); {
		if !isNumberByte(s[i]) {
			i++
			continue
		}
		j := i
		hasDigit := false
		for j < len(s) && isNumberByte(s[j]) {
			hasDigit = hasDigit || isDigit(s[j])
			j++
		}
		runStart, runEnd := i, j
		i = j
		if !hasDigit || runStart > 0 && isWordByte(s[runStart-1]) || runEnd < len(s) && isWordByte(s[runEnd]) {
			flush()
			continue
		}
		start, end := trimNumber(s, runStart, runEnd)
		joined := len(words) > 0 && start == runStart && words[len(words)-1].end == runStart-1 && s[runStart-1] == ' '
		if !joined {
			flush()
		}
		words = append(words, numberWord{start, end, joined})
		if end != runEnd { // trimmed punctuation ends the run, as in "call 0612345678."
			flush()
		}
	}
	flush()
	return replaceSpans(s, spans)
}

// trimNumber trims punctuation that cannot start or end a number from s[start:end].
func trimNumber(s string, start, end int) (int, int) {
	for start < end && !isDigit(s[start]) && s[start] != '+' && s[start] != '(' {
		start++
	}
	for end > start && !isDigit(s[end-1]) && s[end-1] != ')' {
		end--
	}
	open := strings.Count(s[start:end], "(")
	shut := strings.Count(s[start:end], ")")
	if end > start && s[end-1] == ')' && shut > open {
		end--
	}
	if start < end && s[start] == '(' && open > shut {
		start++
	}
	// A whole number in parentheses, "(0612345678)", but not an area code, "(415)".
	if w := s[start:end]; open == 1 && shut == 1 && len(w) > 5 && w[0] == '(' && w[len(w)-1] == ')' {
		start, end = start+1, end-1
	}
	return start, end
}

// classifyFrom redacts the longest run of words from words[i] that is an IP address, a card
// or a phone number, and returns the index of the next word to look at.
func classifyFrom(s string, words []numberWord, i int, spans *[]span) int {
	for j := min(i+maxNumberWords, len(words)); j > i; j-- {
		if !allJoined(words[i+1 : j]) {
			continue
		}
		start, end := words[i].start, words[j-1].end
		if mark := classifyNumber(s[start:end], j-i); mark != "" {
			*spans = append(*spans, span{start, end, mark})
			return j
		}
	}
	return i + 1
}

func allJoined(ws []numberWord) bool {
	for _, w := range ws {
		if !w.joined {
			return false
		}
	}
	return true
}

// classifyNumber returns the marker for c, made of nwords space-separated words, or "".
func classifyNumber(c string, nwords int) string {
	if c == "" {
		return ""
	}
	if nwords == 1 && strings.Count(c, ".") == 3 {
		if a, err := netip.ParseAddr(c); err == nil && a.Is4() {
			return markIP
		}
	}
	if isCard(c) {
		return markCard
	}
	if isPhone(c) {
		return markPhone
	}
	return ""
}

// isCard reports whether c is 13 to 19 digits, optionally grouped by single spaces or dashes,
// that pass the Luhn check.
func isCard(c string) bool {
	if !isDigit(c[0]) || !isDigit(c[len(c)-1]) {
		return false
	}
	digits := 0
	for i := 0; i < len(c); i++ {
		switch {
		case isDigit(c[i]):
			digits++
		case c[i] == ' ' || c[i] == '-':
			if !isDigit(c[i-1]) {
				return false
			}
		default:
			return false
		}
	}
	return digits >= 13 && digits <= 19 && luhn(c)
}

// luhn reports whether the digits of c pass the Luhn check.
func luhn(c string) bool {
	sum, double := 0, false
	for i := len(c) - 1; i >= 0; i-- {
		if !isDigit(c[i]) {
			continue
		}
		d := int(c[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// isPhone reports whether c is written as a phone number: +CC and 7 to 14 more digits; a
// national number of 9 to 15 digits with a leading trunk 0 (020 7946 0958, 06 12 34 56 78,
// 0044 20 …); or North American 3-3-4 groups, optionally after a 1 ((415) 555-2671,
// 1-800-555-0199). Groups are separated by a space, '-', '.' or parentheses.
func isPhone(c string) bool {
	var groups [8]int
	n, digits := 0, 0
	parens := 0
	sep := 0 // separator bytes since the last digit
	for i := 0; i < len(c); i++ {
		switch b := c[i]; {
		case isDigit(b):
			if i == 0 || !isDigit(c[i-1]) {
				if n == len(groups) {
					return false
				}
				n++
			}
			groups[n-1]++
			digits++
			sep = 0
		case b == '+':
			if i != 0 {
				return false
			}
		case b == '(' || b == ')' || b == ' ' || b == '-' || b == '.':
			if b == '(' {
				parens++
			}
			if sep++; sep > 2 || b == '.' && sep > 1 {
				return false
			}
		default:
			return false
		}
	}
	if parens > 1 || n == 0 {
		return false
	}
	g := groups[:n]
	switch {
	case c[0] == '+':
		return digits >= 8 && digits <= 15
	case c[0] == '0' || strings.HasPrefix(c, "(0"):
		return digits >= 9 && digits <= 15 && g[0] >= 2
	case n == 3:
		return g[0] == 3 && g[1] == 3 && g[2] == 4
	case n == 4:
		return c[0] == '1' && g[0] == 1 && g[1] == 3 && g[2] == 3 && g[3] == 4
	}
	return false
}
