package gateway

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestProberRetriesDownBackendQuickly: a backend that starts listening after the gateway is
// marked up within a fraction of health_interval, because a down backend is probed again
// with a backoff that starts at 100ms.
func TestProberRetriesDownBackendQuickly(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0") // reserve a port, then free it for later
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	g, _, _, _, stop, done := startRun(t, "http://"+addr, func(c *Config) { c.Upstream.HealthInterval = Duration(30 * time.Second) })
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	}()
	waitFor(t, "the backend to be marked down", func() bool { return !g.backends[0].up.Load() })
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	up.Listener.Close()
	up.Listener = l
	up.Start()
	defer up.Close()
	start := time.Now()
	waitFor(t, "the backend to be marked up", g.backends[0].up.Load) // fails after 5s
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("backend marked up %s after it listened, want well under health_interval (30s)", d)
	}
}

func TestProbeBackoff(t *testing.T) {
	t.Parallel()
	var got []time.Duration
	d := time.Duration(0)
	for range 7 {
		d = nextProbeBackoff(d, time.Second)
		got = append(got, d)
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		800 * time.Millisecond, time.Second, time.Second, time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("backoff sequence = %v, want %v", got, want)
		}
	}
	if d := nextProbeBackoff(0, 50*time.Millisecond); d != 50*time.Millisecond {
		t.Errorf("first backoff with a 50ms interval = %s, want 50ms", d)
	}
}
