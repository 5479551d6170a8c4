package gateway

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// TestResolveForwarding: forwarding headers are believed only from a trusted peer, and the
// client is the rightmost untrusted address of the chain.
func TestResolveForwarding(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		trusted []string
		remote  string
		tls     bool
		hdr     map[string]string
		want    forwarding
	}{
		{"untrusted peer: client headers ignored", nil, "203.0.113.9:5000", false,
			map[string]string{"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"},
			forwarding{chain: "203.0.113.9", client: "203.0.113.9", host: "gw.example:8080", proto: "http"}},
		{"untrusted peer over TLS", []string{"10.0.0.0/8"}, "203.0.113.9:5000", true, nil,
			forwarding{chain: "203.0.113.9", client: "203.0.113.9", host: "gw.example:8080", proto: "https"}},
		{"trusted peer: chain kept, rightmost untrusted is the client", []string{"10.0.0.0/8", "192.168.1.1"}, "10.1.1.1:5000", false,
			map[string]string{"X-Forwarded-For": "6.6.6.6, 1.2.3.4,192.168.1.1", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example.com"},
			forwarding{chain: "6.6.6.6, 1.2.3.4, 192.168.1.1, 10.1.1.1", client: "1.2.3.4", host: "api.example.com", proto: "https"}},
		{"trusted peer without headers", []string{"10.1.1.1"}, "10.1.1.1:5000", false, nil,
			forwarding{chain: "10.1.1.1", client: "10.1.1.1", host: "gw.example:8080", proto: "http"}},
		{"every hop trusted: the leftmost is the client", []string{"10.0.0.0/8"}, "10.1.1.1:5000", false,
			map[string]string{"X-Forwarded-For": "10.9.9.9, 10.2.2.2"},
			forwarding{chain: "10.9.9.9, 10.2.2.2, 10.1.1.1", client: "10.9.9.9", host: "gw.example:8080", proto: "http"}},
		{"garbage in the chain stops the walk", []string{"10.0.0.0/8"}, "10.1.1.1:5000", false,
			map[string]string{"X-Forwarded-For": "1.2.3.4, junk, 10.2.2.2", "X-Forwarded-Proto": "gopher", "X-Forwarded-Host": "bad host\""},
			forwarding{chain: "1.2.3.4, junk, 10.2.2.2, 10.1.1.1", client: "10.2.2.2", host: "gw.example:8080", proto: "http"}},
		{"IPv6 and mapped IPv4", []string{"::1"}, "[::ffff:127.0.0.1]:5000", false, nil,
			forwarding{chain: "127.0.0.1", client: "127.0.0.1", host: "gw.example:8080", proto: "http"}},
		{"IPv6 trusted peer", []string{"::1/128"}, "[::1]:5000", false,
			map[string]string{"X-Forwarded-For": "2001:db8::7", "X-Forwarded-Proto": "http, https"},
			forwarding{chain: "2001:db8::7, ::1", client: "2001:db8::7", host: "gw.example:8080", proto: "https"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			in, err := newIntake(Config{TrustedProxies: c.trusted, BodyMemoryBytes: 1}.withDefaults())
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodPost, "http://gw.example:8080/v1/chat/completions", nil)
			r.RemoteAddr = c.remote
			if c.tls {
				r.TLS = &tls.ConnectionState{}
			}
			for k, v := range c.hdr {
				r.Header.Set(k, v)
			}
			if got := in.resolve(r); got != c.want {
				t.Errorf("resolve(%s, %v) = %+v, want %+v", c.remote, c.hdr, got, c.want)
			}
		})
	}
}

// TestForwardingHeadersUpstream: what the backend receives, with the client's own forwarding
// headers spoofed.
func TestForwardingHeadersUpstream(t *testing.T) {
	t.Parallel()
	spoof := []string{"X-Forwarded-For", "6.6.6.6", "X-Real-IP", "6.6.6.6", "Forwarded", "for=6.6.6.6",
		"X-Forwarded-Host", "evil.example", "X-Forwarded-Proto", "https", "X-Forwarded-Port", "443"}
	for _, trusted := range []bool{false, true} {
		up := newRecorder(t, http.StatusOK, chatAnswer)
		f := newFixture(t, func(c *Config) {
			if trusted {
				c.TrustedProxies = []string{"127.0.0.1"}
			}
		}, up.URL)
		resp := f.post(t, "/v1/chat/completions", `{"model":"m"}`, spoof...)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		host := strings.TrimPrefix(f.srv.URL, "http://")
		want := map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Real-Ip": "127.0.0.1", "X-Forwarded-Proto": "http",
			"X-Forwarded-Host": host, "X-Forwarded-Port": "", "Forwarded": `for=127.0.0.1;host="` + host + `";proto=http`}
		if trusted { // the peer is a trusted proxy: its headers are believed
			want = map[string]string{"X-Forwarded-For": "6.6.6.6, 127.0.0.1", "X-Real-Ip": "6.6.6.6", "X-Forwarded-Proto": "https",
				"X-Forwarded-Host": "evil.example", "X-Forwarded-Port": "", "Forwarded": `for=6.6.6.6;host="evil.example";proto=https`}
		}
		for k, v := range want {
			if got := up.header.Values(k); strings.Join(got, "|") != v {
				t.Errorf("trusted=%v: upstream %s = %q, want %q", trusted, k, got, v)
			}
		}
	}
}

func TestForwardedElement(t *testing.T) {
	t.Parallel()
	cases := []struct {
		f    forwarding
		want string
	}{
		{forwarding{client: "1.2.3.4", host: "a.example", proto: "https"}, `for=1.2.3.4;host="a.example";proto=https`},
		{forwarding{client: "2001:db8::1", host: "[::1]:8080", proto: "http"}, `for="[2001:db8::1]";host="[::1]:8080";proto=http`},
		{forwarding{proto: "http"}, `for=unknown;proto=http`},
	}
	for _, c := range cases {
		if got := c.f.element(); got != c.want {
			t.Errorf("element(%+v) = %s, want %s", c.f, got, c.want)
		}
	}
}

// TestMethodNotAllowedAllow: a 405 names the methods the path allows.
func TestMethodNotAllowedAllow(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, "http://127.0.0.1:1")
	cases := []struct{ method, path, allow string }{
		{http.MethodGet, "/v1/chat/completions", "POST"},
		{http.MethodPut, "/v1/embeddings", "POST"},
		{http.MethodPost, "/v1/models", "GET, HEAD"},
		{http.MethodDelete, "/v1/models/org/name", "GET, HEAD"},
		{http.MethodPost, "/healthz", "GET, HEAD"},
		{http.MethodPatch, "/readyz", "GET, HEAD"},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, f.srv.URL+c.path, nil)
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != c.allow || gjson.Get(body, "error.code").Str != "method_not_allowed" {
			t.Errorf("%s %s: %d Allow %q %s, want 405 Allow %q method_not_allowed", c.method, c.path, resp.StatusCode,
				resp.Header.Get("Allow"), body, c.allow)
		}
	}
}
