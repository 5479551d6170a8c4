package sim

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fault-injection request headers.
const (
	headerTTFT  = "X-Sim-TTFT"
	headerITL   = "X-Sim-ITL"
	headerFail  = "X-Sim-Fail"
	headerUsage = "X-Sim-Usage"
)

// stallTimeout is how long stall-after=N holds a request before aborting it.
const stallTimeout = 2 * time.Minute

// faultKind is what X-Sim-Fail asks for.
type faultKind int

const (
	faultNone       faultKind = iota
	fault500                  // answer 500 at once
	fault429                  // answer 429 with Retry-After at once
	faultDisconnect           // abort the connection after N content chunks
	faultStall                // hold the request after N content chunks
	faultMalformed            // one invalid-JSON event, or a truncated body
	faultErrorEvent           // in-band error event after N content chunks
)

// fault is a parsed X-Sim-Fail header.
type fault struct {
	kind  faultKind
	after int // content chunks before the fault, for the "-after=N" kinds
}

// atChunk reports whether f fires once emitted content chunks have been sent.
func (f fault) atChunk(emitted int) bool {
	switch f.kind {
	case faultDisconnect, faultStall, faultErrorEvent:
		return emitted == f.after
	default:
		return false
	}
}

// usageMode is what X-Sim-Usage asks for.
type usageMode int

const (
	usageNormal usageMode = iota // as the request asks
	usageOmit                    // never send usage
	usageFinish                  // usage on the finish chunk, asked or not
)

// overrides are one request's fault-injection settings.
type overrides struct {
	ttft, itl time.Duration
	fault     fault
	usage     usageMode
}

// parseOverrides reads the X-Sim-* headers of h; ttft and itl are the defaults.
func parseOverrides(h http.Header, ttft, itl time.Duration) (overrides, error) {
	o := overrides{ttft: ttft, itl: itl}
	var err error
	if o.ttft, err = parseDuration(h, headerTTFT, ttft); err != nil {
		return overrides{}, err
	}
	if o.itl, err = parseDuration(h, headerITL, itl); err != nil {
		return overrides{}, err
	}
	if o.fault, err = parseFault(strings.TrimSpace(h.Get(headerFail))); err != nil {
		return overrides{}, err
	}
	switch v := strings.TrimSpace(h.Get(headerUsage)); v {
	case "":
	case "omit":
		o.usage = usageOmit
	case "finish":
		o.usage = usageFinish
	default:
		return overrides{}, fmt.Errorf("parse %s: want omit or finish, got %q", headerUsage, v)
	}
	return o, nil
}

// parseDuration reads header name of h as a non-negative duration, or returns def if absent.
func parseDuration(h http.Header, name string, def time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(h.Get(name))
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", name, err)
	}
	if d < 0 {
		return 0, fmt.Errorf("parse %s: must be >= 0, got %s", name, d)
	}
	return d, nil
}

// parseFault parses an X-Sim-Fail value.
func parseFault(v string) (fault, error) {
	switch v {
	case "":
		return fault{}, nil
	case "500":
		return fault{kind: fault500}, nil
	case "429":
		return fault{kind: fault429}, nil
	case "malformed":
		return fault{kind: faultMalformed}, nil
	}
	name, num, ok := strings.Cut(v, "=")
	kinds := map[string]faultKind{
		"disconnect-after":  faultDisconnect,
		"stall-after":       faultStall,
		"error-event-after": faultErrorEvent,
	}
	kind, known := kinds[name]
	if !ok || !known {
		return fault{}, fmt.Errorf("parse %s: unknown value %q", headerFail, v)
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 {
		return fault{}, fmt.Errorf("parse %s: %s needs a count >= 0, got %q", headerFail, name, num)
	}
	return fault{kind: kind, after: n}, nil
}
