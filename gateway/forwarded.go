package gateway

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// parseTrusted reads one trusted_proxies entry: an IP address (a single host) or a CIDR.
func parseTrusted(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("parse trusted proxy: %w", err)
		}
		return netip.PrefixFrom(p.Addr().Unmap(), unmappedBits(p)).Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("parse trusted proxy: %w", err)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// unmappedBits is p's length once an IPv4-mapped IPv6 prefix is read as IPv4.
func unmappedBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return max(p.Bits()-96, 0)
	}
	return p.Bits()
}

// forwarding is what the gateway tells a backend about the client, resolved from what it saw.
type forwarding struct {
	chain  string // X-Forwarded-For: the hops before the gateway, the nearest last
	client string // X-Real-IP: the client's address; empty when the peer is not an IP
	host   string // X-Forwarded-Host: the host the client asked for
	proto  string // X-Forwarded-Proto: http or https, as the client connected
}

// setForwarded sets the forwarding headers of an upstream request from what the gateway saw,
// never from the client alone: copyRequestHeaders drops the client's. A peer in
// trusted_proxies is a proxy whose own X-Forwarded-* headers are believed; any other peer is
// the client. Forwarded (RFC 7239) is rewritten to one element that says the same as the
// X-Forwarded-* headers: for (the client), host and proto.
func (g *Gateway) setForwarded(dst http.Header, r *http.Request) {
	f := g.intake.resolve(r)
	if f.client != "" {
		dst.Set("X-Forwarded-For", f.chain)
		dst.Set("X-Real-Ip", f.client)
	}
	if f.host != "" {
		dst.Set("X-Forwarded-Host", f.host)
	}
	dst.Set("X-Forwarded-Proto", f.proto)
	dst.Set("Forwarded", f.element())
}

// resolve works out r's client, host and scheme. The immediate peer is trusted only when it
// is in trusted_proxies; then the chain it sent is kept with the peer appended, and the
// client is the rightmost address of the chain that is not a trusted proxy (a hop that is
// not an address ends the walk: what lies left of it cannot be vouched for).
func (in *intake) resolve(r *http.Request) forwarding {
	f := forwarding{host: r.Host, proto: "http"}
	if r.TLS != nil {
		f.proto = "https"
	}
	if !validHost(f.host) {
		f.host = ""
	}
	peer, ok := parseHop(r.RemoteAddr)
	if !ok {
		return f // not an IP connection: nothing to say about the client
	}
	f.client, f.chain = peer.String(), peer.String()
	if !in.isTrusted(peer) {
		return f
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for h := range strings.SplitSeq(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				hops = append(hops, h)
			}
		}
	}
	if len(hops) > 0 {
		f.chain = strings.Join(hops, ", ") + ", " + f.chain
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			break
		}
		f.client = a.String()
		if !in.isTrusted(a) {
			break
		}
	}
	if p := lastElement(r.Header, "X-Forwarded-Proto"); p == "http" || p == "https" {
		f.proto = p
	}
	if h := lastElement(r.Header, "X-Forwarded-Host"); validHost(h) {
		f.host = h
	}
	return f
}

func (in *intake) isTrusted(a netip.Addr) bool {
	for _, p := range in.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHop reads an address as it appears in RemoteAddr or X-Forwarded-For: an IP, with or
// without a port, IPv6 in brackets or not. IPv4-mapped IPv6 reads as IPv4.
func parseHop(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// lastElement is the last comma-separated element of header k: the one set by the nearest
// proxy.
func lastElement(h http.Header, k string) string {
	vv := h.Values(k)
	if len(vv) == 0 {
		return ""
	}
	v := vv[len(vv)-1]
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return strings.ToLower(strings.TrimSpace(v))
}

// validHost accepts a host[:port] made of the characters hosts and IPv6 literals use, so
// that a value is safe in a header and in a quoted Forwarded parameter.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := range len(h) {
		c := h[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._:[]", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

// element is the Forwarded header's one element: for=client;host="host";proto=scheme, with
// an IPv6 client quoted in brackets as RFC 7239 §6 asks.
func (f forwarding) element() string {
	var b strings.Builder
	switch {
	case f.client == "":
		b.WriteString("for=unknown")
	case strings.Contains(f.client, ":"):
		b.WriteString(`for="[` + f.client + `]"`)
	default:
		b.WriteString("for=" + f.client)
	}
	if f.host != "" {
		b.WriteString(`;host="` + f.host + `"`)
	}
	b.WriteString(";proto=" + f.proto)
	return b.String()
}
