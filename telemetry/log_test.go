package telemetry

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	got := Config{}.WithDefaults()
	want := Config{LogLevel: "info", LogFormat: "json", LogOutput: "stdout",
		Audit: AuditConfig{MaxSizeMB: 100, MaxBackups: 5, MaxContentBytes: 65536}, Tracing: TracingConfig{}.WithDefaults()}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Config{}.WithDefaults() = %+v, want %+v", got, want)
	}
	if err := got.Validate("telemetry."); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

func TestConfigValidateLogs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "access.log")
	audit := func(a AuditConfig) Config { return Config{Audit: a}.WithDefaults() }
	cases := []struct {
		name    string
		cfg     Config
		wantErr []string // each must appear; nil means valid
	}{
		{"stderr", Config{LogOutput: "stderr"}.WithDefaults(), nil},
		{"file", Config{LogOutput: file}.WithDefaults(), nil},
		{"file in missing dir", Config{LogOutput: filepath.Join(dir, "no", "a.log")}.WithDefaults(),
			[]string{"telemetry.log_output: directory"}},
		{"directory", Config{LogOutput: dir}.WithDefaults(), []string{"telemetry.log_output:", "is a directory"}},
		{"zero output and audit mean defaults", Config{LogLevel: "info", LogFormat: "json"}, nil},
		{"audit on", audit(AuditConfig{Enabled: true, Path: filepath.Join(dir, "audit.log")}), nil},
		{"audit off without path", audit(AuditConfig{}), nil},
		{"audit on without path", audit(AuditConfig{Enabled: true}), []string{"telemetry.audit.path: must be set"}},
		{"audit to stdout", audit(AuditConfig{Enabled: true, Path: "stdout"}), []string{"telemetry.audit.path: must be a file"}},
		{"audit same as access log", Config{LogOutput: file, Audit: AuditConfig{Enabled: true, Path: file}}.WithDefaults(),
			[]string{"telemetry.audit.path: must differ from log_output"}},
		{"audit bad numbers", Config{LogLevel: "info", LogFormat: "json", LogOutput: "stdout",
			Audit: AuditConfig{MaxSizeMB: -1, MaxBackups: -2, MaxContentBytes: -3}},
			[]string{"telemetry.audit.max_size_mb: must be > 0 (0 means 100), got -1",
				"telemetry.audit.max_backups: must be > 0 (0 means 5), got -2",
				"telemetry.audit.max_content_bytes: must be > 0 (0 means 65536) and at most 4194304, got -3"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := c.cfg.Validate("telemetry.")
			if c.wantErr == nil {
				if err != nil {
					t.Errorf("Validate(%+v) = %v, want nil", c.cfg, err)
				}
				return
			}
			for _, w := range c.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Validate(%+v) = %v, want mention of %q", c.cfg, err, w)
				}
			}
		})
	}
}

func TestOpenLogOutput(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"stdout", "stderr", ""} {
		w, err := OpenLogOutput(Config{LogOutput: name})
		if err != nil {
			t.Fatalf("OpenLogOutput(%q): %v", name, err)
		}
		if err := w.Close(); err != nil {
			t.Errorf("Close of %q = %v, want nil", name, err)
		}
	}
	if _, err := os.Stdout.Stat(); err != nil {
		t.Errorf("stdout after Close: %v, want it left open", err)
	}

	path := filepath.Join(t.TempDir(), "access.log")
	if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := OpenLogOutput(Config{LogOutput: path})
	if err != nil {
		t.Fatalf("OpenLogOutput(file): %v", err)
	}
	if _, err := w.Write([]byte("new\n")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := readFile(t, path); got != "old\nnew\n" {
		t.Errorf("access.log = %q, want the line appended", got)
	}
	if _, err := OpenLogOutput(Config{LogOutput: filepath.Join(t.TempDir(), "no", "x.log")}); err == nil {
		t.Errorf("OpenLogOutput in a missing directory: err = nil, want one")
	}
}
