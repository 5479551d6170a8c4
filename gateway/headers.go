package gateway

import (
	"net/http"
	"strings"
)

// hopHeaders are the hop-by-hop headers of RFC 9110 §7.6.1, never forwarded either way.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// clientOnlyHeaders never go upstream: the client's credentials (the backend gets its own key),
// framing the gateway recomputes, Accept-Encoding, since the gateway reads the body,
// Content-Encoding, since the gateway decodes a gzip body and sends it decoded, the
// forwarding headers and their look-alikes, which setForwarded rewrites from what the gateway
// saw (forwarded.go), and the trace context, which send injects from the request's context:
// the caller's own when it was valid, never an invalid one or a tracestate without its trace.
var clientOnlyHeaders = []string{"Authorization", "Api-Key", "X-Api-Key", "Cookie", "Host",
	"Content-Length", "Accept-Encoding", "Content-Encoding", "X-Request-Id",
	"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port", "X-Real-Ip", "Forwarded",
	"Client-Ip", "True-Client-Ip", "X-Client-Ip", "X-Cluster-Client-Ip", "X-Original-Forwarded-For",
	"Traceparent", "Tracestate"}

// upstreamOnlyHeaders are response headers the gateway sets itself.
var upstreamOnlyHeaders = []string{"Content-Length", "X-Request-Id", "Server-Timing", "X-Llmgate-Backend"}

// copyRequestHeaders copies the client's headers that may go upstream into dst.
func copyRequestHeaders(dst, src http.Header) {
	copyHeaders(dst, src, clientOnlyHeaders)
}

// copyResponseHeaders copies the backend's response headers that may reach the client.
func copyResponseHeaders(dst, src http.Header) {
	copyHeaders(dst, src, upstreamOnlyHeaders)
}

func copyHeaders(dst, src http.Header, drop []string) {
	connTokens := src.Values("Connection")
	for k, vv := range src {
		if isListed(k, hopHeaders) || isListed(k, drop) || namedIn(k, connTokens) || spellsListed(k, drop) {
			continue
		}
		dst[k] = append([]string(nil), vv...)
	}
}

// spellsListed reports whether k is a listed name written with underscores for dashes
// (X-Forwarded_For), which servers that follow CGI's naming read as the listed header.
func spellsListed(k string, list []string) bool {
	if !strings.Contains(k, "_") {
		return false
	}
	return isListed(http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-")), list)
}

func isListed(k string, list []string) bool {
	for _, h := range list {
		if h == k {
			return true
		}
	}
	return false
}

// namedIn reports whether header k is named by a Connection header, which makes it hop-by-hop.
func namedIn(k string, connTokens []string) bool {
	for _, v := range connTokens {
		for tok := range strings.SplitSeq(v, ",") {
			if http.CanonicalHeaderKey(strings.TrimSpace(tok)) == k {
				return true
			}
		}
	}
	return false
}
