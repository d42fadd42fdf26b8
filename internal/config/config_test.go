package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestLoadFull(t *testing.T) {
	cfg, err := Load("testdata/full.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Limits.MaxSize, ByteSize(200<<20); got != want {
		t.Errorf("max_size: got %d, want %d", got, want)
	}
	if got, want := cfg.Limits.EngineTimeout, 2*time.Minute; got != want {
		t.Errorf("engine_timeout: got %v, want %v", got, want)
	}
	if !cfg.KeepUploads || cfg.KeepUploadsFor != 168*time.Hour || cfg.KeepUploadsMaxSize != 10<<30 {
		t.Errorf("keep_uploads: got %t, for %v, max size %d; want true, 168h, 10GiB", cfg.KeepUploads, cfg.KeepUploadsFor, cfg.KeepUploadsMaxSize)
	}
	if got, want := cfg.KeepReportsFor, 8760*time.Hour; got != want {
		t.Errorf("keep_reports_for: got %v, want %v", got, want)
	}
	if got, want := len(cfg.Engines), 3; got != want {
		t.Fatalf("engines: got %d, want %d", got, want)
	}
	if fd := cfg.Engines[0].FDPass; fd == nil || *fd {
		t.Errorf("fdpass: got %v, want false", fd)
	}
	if fd := cfg.Engines[1].FDPass; fd != nil {
		t.Errorf("fdpass unset: got %v, want nil (the engine's default)", *fd)
	}
	if got, want := cfg.Engines[2].InfectedWhen.OutputMatches, `^(?P<signature>\S+) `; got != want {
		t.Errorf("output_matches: got %q, want %q", got, want)
	}
	if s := fmt.Sprint(cfg.Store.URL); strings.Contains(s, "hunter2") {
		t.Errorf("store url printed its secret: %s", s)
	}
	if got, want := cfg.Store.URL.Reveal(), "postgres://lazaret:hunter2@db/lazaret"; got != want {
		t.Errorf("store url: got %q, want %q", got, want)
	}
}

func TestLoadDefaults(t *testing.T) {
	cfg, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Engines) != 1 || cfg.Engines[0].Type != TypeBuiltin {
		t.Errorf("got engines %+v, want one builtin", cfg.Engines)
	}
	if cfg.Listen != "127.0.0.1:8080" {
		t.Errorf("got listen %q, want loopback", cfg.Listen)
	}
	if got, want := cfg.KeepUploadsFor, 720*time.Hour; got != want {
		t.Errorf("keep_uploads_for: got %v, want %v", got, want)
	}
	if got, want := cfg.KeepReportsFor, 2160*time.Hour; got != want {
		t.Errorf("keep_reports_for: got %v, want %v", got, want)
	}
}

func TestLoadEnv(t *testing.T) {
	env := map[string]string{
		"LAZARET_LISTEN":   "127.0.0.1:7000",
		"LAZARET_MAX_SIZE": "1G",
		"LAZARET_CLAMD":    "tcp://127.0.0.1:3310,tcp://127.0.0.1:3311",
	}
	cfg, err := Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:7000" || cfg.Limits.MaxSize != 1<<30 {
		t.Errorf("env not applied: %+v", cfg)
	}
	if len(cfg.Engines) != 1 || cfg.Engines[0].Type != TypeClamd || len(cfg.Engines[0].Addresses) != 2 {
		t.Errorf("got engines %+v, want one clamd with two addresses", cfg.Engines)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		file string
		want string
	}{
		{"unknown_key.yaml", "field listen_adress not found"},
		{"clamd_no_address.yaml", "engines[0].address: a clamd engine needs address"},
		{"unknown_type.yaml", `engines[0].type: unknown engine type "virustotal"`},
		{"duplicate_name.yaml", `engines[1].name: "a" is used twice`},
		{"command_no_command.yaml", "engines[0].command: a command engine needs a command"},
		{"bad_size.yaml", `size "lots"`},
		{"bad_level.yaml", `log.level: "loud"`},
		{"builtin_address.yaml", "engines[0].address: only clamd engines have addresses"},
		{"no_name.yaml", "engines[0].name: required"},
		{"bad_schedule.yaml", "rescan.schedule:"},
		{"negative_keep_uploads_for.yaml", "keep_uploads_for: must not be negative"},
		{"negative_keep_reports_for.yaml", "keep_reports_for: must not be negative"},
		{"missing.yaml", "no such file"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := Load("testdata/"+tc.file, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"1048576", 1 << 20, true}, {"64K", 64 << 10, true}, {"200MiB", 200 << 20, true},
		{"2G", 2 << 30, true}, {"2GB", 2 << 30, true}, {"1t", 1 << 40, true}, {" 5 M ", 5 << 20, true},
		{"", 0, false}, {"-1", 0, false}, {"1X", 0, false}, {"99999999999T", 0, false},
		{"1iB", 0, false}, {"1BIB", 0, false}, {"+5", 0, false}, {"K", 0, false}, {"1 0", 0, false},
		{"99999999999999999999", 0, false}, {"5kib", 5 << 10, true},
	} {
		got, err := ParseByteSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
