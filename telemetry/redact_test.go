package telemetry

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// Secrets of each kind, made up for the tests. The card numbers are the networks' test numbers.
var testSecrets = []struct {
	name, secret, mark string
}{
	{"email", "jane.doe+llm@example.co.uk", markEmail},
	{"email short", "a@b.io", markEmail},
	{"phone e164", "+14155552671", markPhone},
	{"phone intl spaced", "+44 20 7946 0958", markPhone},
	{"phone intl parens", "+1 (415) 555-2671", markPhone},
	{"phone intl trunk", "+33 (0)6 12 34 56 78", markPhone},
	{"phone nanp parens", "(415) 555-2671", markPhone},
	{"phone nanp dashes", "415-555-2671", markPhone},
	{"phone nanp dots", "415.555.2671", markPhone},
	{"phone nanp toll free", "1-800-555-0199", markPhone},
	{"phone national fr", "06 12 34 56 78", markPhone},
	{"phone national uk", "020 7946 0958", markPhone},
	{"phone national de", "030-12345678", markPhone},
	{"phone national bare", "0612345678", markPhone},
	{"card visa", "4111111111111111", markCard},
	{"card visa spaced", "4111 1111 1111 1111", markCard},
	{"card mastercard dashed", "5500-0000-0000-0004", markCard},
	{"card amex", "3782 822463 10005", markCard},
	{"card 19 digits", "6011000990139424009", markCard},
	{"ipv4", "192.168.10.42", markIP},
	{"ipv4 loopback", "127.0.0.1", markIP},
	{"ipv6", "2001:db8:85a3::8a2e:370:7334", markIP},
	{"ipv6 loopback", "::1", markIP},
	{"ipv6 full", "fe80:0:0:0:202:b3ff:fe1e:8329", markIP},
	{"ipv6 mapped", "::ffff:192.0.2.128", markIP},
	{"openai key", "sk-abcdefghijklmnopqrstuvwxyz0123456789ABCD", markKey},
	{"openai project key", "sk-proj-Ab3_dEf-GhIjKlMnOpQrStUvWxYz0123456789", markKey},
	{"anthropic key", "sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345", markKey},
	{"stripe key", "sk_live_abcdefghijklmnop1234", markKey},
	{"bearer", "Bearer abcdef0123456789.xyz", markKey},
	{"bearer lowercase", "bearer 0123456789abcdefABCDEF", markKey},
	{"jwt", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", markKey},
	{"aws access key", "AKIAIOSFODNN7EXAMPLE", markKey},
	{"aws session key", "ASIAY34FZKBOKMUTVV7A", markKey},
	{"github classic", "ghp_abcdefghijklmnopqrstuvwxyz0123456789", markKey},
	{"github fine grained", "github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOP", markKey},
	{"slack", "xoxb-123456789012-1234567890123-abcdefghijklmnopqrstuvwx", markKey},
	{"google", "AIzaSyA1234567890abcdefghijklmnopqrstuv", markKey},
	{"hugging face", "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH", markKey},
	{"pem", "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nabc=\n-----END RSA PRIVATE KEY-----", markKey},
}

func TestRedactEachKind(t *testing.T) {
	t.Parallel()
	for _, c := range testSecrets {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for _, in := range []string{
				c.secret,
				"before " + c.secret + " after",
				"(" + c.secret + ").",
				"x:\n" + c.secret + "\n",
			} {
				got := Redact(in)
				want := strings.Replace(in, c.secret, c.mark, 1)
				if got != want {
					t.Errorf("Redact(%q) = %q, want %q", in, got, want)
				}
			}
		})
	}
}

func TestRedactLeavesOrdinaryText(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, in string }{
		{"luhn failing 16 digits", "order 4111111111111112 shipped"},
		{"luhn failing spaced", "ref 1234 5678 9012 3456"},
		{"12 digits", "id 411111111111"},
		{"version 5 parts", "upgrade to 1.2.3.4.5 now"},
		{"version 3 parts", "go 1.26.8 and v1.2.3.4"},
		{"ipv4 out of range", "not 300.1.2.3"},
		{"iso date", "on 2024-03-15 at 10:30:00"},
		{"dotted date", "on 15.03.2024 and 03/15/2024"},
		{"spaced date", "15 03 2024"},
		{"year", "in 1999 and 2024"},
		{"year range", "1999-2004"},
		{"token count", "used 128000 tokens, 4096 output, 1,048,576 max"},
		{"thousands spaced", "1 000 000 and 100 000 000"},
		{"price", "costs $1,299.99 or 12.50 EUR, +15% vs -3.5"},
		{"plain number", "answer: 42, pi 3.14159, e 2.71828"},
		{"time", "12:30:45 and 16:9"},
		{"hex and namespaces", "std::vector, a::b, cafe::babe, 0xdeadbeef"},
		{"mac address", "00:1A:2B:3C:4D:5E"},
		{"at without domain", "@user and me@localhost and a@b"},
		{"short sk", "sk-short and task-abcdefghijklmnopqrstuvwxyz"},
		{"bearer prose", "the Bearer authentication scheme"},
		{"eyJ prefix only", "eyJhbGciOi is a header"},
		{"akia short", "AKIA1234"},
		{"math", "2+2=4, 3-1=2, (1+2)*3"},
		{"phone too short", "+1234567 and 555-1234"},
		{"ssn like", "123-45-6789"},
		{"utf8", "héllo wörld — 日本語 2024年"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := Redact(c.in); got != c.in {
				t.Errorf("Redact(%q) = %q, want it unchanged", c.in, got)
			}
		})
	}
}

func TestRedactMixed(t *testing.T) {
	t.Parallel()
	in := "Mail jane@example.com or call +44 20 7946 0958; card 4111 1111 1111 1111 exp 12/27, " +
		"server 10.0.0.7:8080 [2001:db8::1]:443, Authorization: Bearer sk-abcdefghijklmnopqrstuvwxyz0123, " +
		"on 2024-03-15 for 1299.99 USD."
	want := "Mail [REDACTED:email] or call [REDACTED:phone]; card [REDACTED:card] exp 12/27, " +
		"server [REDACTED:ip]:8080 [[REDACTED:ip]]:443, Authorization: Bearer [REDACTED:key], " +
		"on 2024-03-15 for 1299.99 USD."
	if got := Redact(in); got != want {
		t.Errorf("Redact(%q)\n got %q\nwant %q", in, got, want)
	}
}

func TestLuhn(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]bool{
		"4111111111111111": true, "4111 1111 1111 1111": true, "79927398713": true,
		"4111111111111112": false, "79927398710": false,
	} {
		if got := luhn(in); got != want {
			t.Errorf("luhn(%q) = %v, want %v", in, got, want)
		}
	}
}

// FuzzRedact checks that Redact never panics, that it changes nothing without leaving a
// marker, and that a known secret set apart by spaces never survives, whatever surrounds it.
func FuzzRedact(f *testing.F) {
	for i, c := range testSecrets {
		f.Add("text "+c.name, "more", uint8(i))
	}
	f.Add("call 06 12", "34 56 78 or 1 2", uint8(0))
	f.Add("4111 1111", "1111 1111 12 34", uint8(14))
	f.Add("a@b.c@d.ef", "::1::2 1.2.3.4.5", uint8(20))
	f.Add("Bearer", "eyJ.eyJ.", uint8(30))
	f.Add(strings.Repeat("9 ", 50), strings.Repeat("@a.", 20), uint8(3))
	f.Fuzz(func(t *testing.T, prefix, suffix string, pick uint8) {
		for _, in := range []string{prefix + suffix, prefix} {
			out := Redact(in)
			if out != in && !strings.Contains(out, "[REDACTED:") {
				t.Fatalf("Redact(%q) = %q: changed without a marker", in, out)
			}
			if utf8.ValidString(in) && !utf8.ValidString(out) {
				t.Fatalf("Redact(%q) = %q: not valid UTF-8", in, out)
			}
		}
		c := testSecrets[int(pick)%len(testSecrets)]
		in := prefix + " " + c.secret + " " + suffix
		if out := Redact(in); strings.Contains(out, c.secret) {
			t.Fatalf("Redact(%q) = %q: the %s %q survived", in, out, c.name, c.secret)
		}
	})
}

func BenchmarkRedact64KiB(b *testing.B) {
	var sb strings.Builder
	para := "The user asked about order 12345 placed on 2024-03-15 for $1,299.99; " +
		"contact jane.doe@example.com or +44 20 7946 0958. Server 10.0.0.7 logged 128000 tokens " +
		"with std::vector<int> and version 1.2.3. Plain prose follows to fill the prompt out. "
	for sb.Len() < 64<<10 {
		sb.WriteString(para)
	}
	in := sb.String()[:64<<10]
	b.Run("mixed", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			_ = Redact(in)
		}
	})
	plain := strings.Repeat("Plain prose without any personal data in it, only words. ", 64<<10/57+1)[:64<<10]
	b.Run("clean", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(plain)))
		for b.Loop() {
			_ = Redact(plain)
		}
	})
}
