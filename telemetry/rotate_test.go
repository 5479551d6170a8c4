package telemetry

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "<missing>"
	}
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}

func TestRotatingFileRotates(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	r, err := OpenRotatingFile(path, 10, 2)
	if err != nil {
		t.Fatalf("OpenRotatingFile: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	// Each write is 4 bytes; a file holds two (8 ≤ 10) and the third rotates.
	for _, w := range []string{"aaa\n", "bbb\n", "ccc\n", "ddd\n", "eee\n", "fff\n", "ggg\n"} {
		if n, err := r.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", w, n, err)
		}
	}
	want := map[string]string{
		path:        "ggg\n",
		path + ".1": "eee\nfff\n",
		path + ".2": "ccc\nddd\n",
		path + ".3": "<missing>", // max_backups is 2: aaa and bbb are gone
	}
	for p, w := range want {
		if got := readFile(t, p); got != w {
			t.Errorf("%s = %q, want %q", filepath.Base(p), got, w)
		}
	}
	fi, err := os.Stat(path + ".1")
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("backup mode = %v, want 0600", perm)
	}
}

func TestRotatingFileAppendsToExisting(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte("old-old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := OpenRotatingFile(path, 10, 1)
	if err != nil {
		t.Fatalf("OpenRotatingFile: %v", err)
	}
	_, _ = r.Write([]byte("x\n"))   // 8+2 = 10: fits
	_, _ = r.Write([]byte("new\n")) // would make 14: rotates
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got, want := readFile(t, path+".1"), "old-old\nx\n"; got != want {
		t.Errorf("audit.log.1 = %q, want %q", got, want)
	}
	if got, want := readFile(t, path), "new\n"; got != want {
		t.Errorf("audit.log = %q, want %q", got, want)
	}
}

func TestRotatingFileLargeWriteStaysWhole(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a.log")
	r, err := OpenRotatingFile(path, 10, 3)
	if err != nil {
		t.Fatalf("OpenRotatingFile: %v", err)
	}
	big := strings.Repeat("z", 25) + "\n"
	for _, w := range []string{"a\n", big, "b\n"} {
		if _, err := r.Write([]byte(w)); err != nil {
			t.Fatalf("Write(%q): %v", w, err)
		}
	}
	_ = r.Close()
	for p, w := range map[string]string{path + ".2": "a\n", path + ".1": big, path: "b\n"} {
		if got := readFile(t, p); got != w {
			t.Errorf("%s = %q, want %q", filepath.Base(p), got, w)
		}
	}
}

func TestRotatingFileClose(t *testing.T) {
	t.Parallel()
	r, err := OpenRotatingFile(filepath.Join(t.TempDir(), "a.log"), 10, 1)
	if err != nil {
		t.Fatalf("OpenRotatingFile: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if _, err := r.Write([]byte("x\n")); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Write after Close = %v, want fs.ErrClosed", err)
	}
}

func TestOpenRotatingFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cases := []struct {
		name    string
		path    string
		size    int64
		backups int
	}{
		{"zero size", filepath.Join(dir, "a"), 0, 1},
		{"negative backups", filepath.Join(dir, "b"), 10, -1},
		{"missing directory", filepath.Join(dir, "nope", "c"), 10, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if r, err := OpenRotatingFile(c.path, c.size, c.backups); err == nil {
				_ = r.Close()
				t.Errorf("OpenRotatingFile(%q, %d, %d) = nil error, want one", c.path, c.size, c.backups)
			}
		})
	}
}

func TestRotatingFileNoBackups(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a.log")
	r, err := OpenRotatingFile(path, 4, 0)
	if err != nil {
		t.Fatalf("OpenRotatingFile: %v", err)
	}
	_, _ = r.Write([]byte("aa\n"))
	_, _ = r.Write([]byte("bb\n"))
	_ = r.Close()
	if got := readFile(t, path); got != "bb\n" {
		t.Errorf("a.log = %q, want %q", got, "bb\n")
	}
	if got := readFile(t, path+".1"); got != "<missing>" {
		t.Errorf("a.log.1 = %q, want no backup", got)
	}
}
