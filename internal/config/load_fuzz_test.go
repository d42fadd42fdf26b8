package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzLoad runs Load on any configuration file, with no environment. The
// file is the operator's, but often templated or merged by tools, so:
//
//   - nothing panics, and every error starts with "config:";
//   - Load is a function of the file: a second Load gives the same
//     configuration and the same error;
//   - a configuration that loads validates again, and holds what the
//     rest of lazaret counts on: at least one engine, each with a name
//     used once and a known type, at least one worker, no negative size.
//
// There is no marshal function to round-trip through (secrets marshal
// as <secret> on purpose), so that property is not checked.
func FuzzLoad(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files: %v", err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"", "---\n", "{}", "[]", "null", "~", "listen: [", "workers: 0", "engines: []",
		"limits: {max_size: {a: 1}}", "limits: {max_size: [1]}", "limits: {max_size: 1E3}",
		"a: &a 1M\nlimits: {max_size: *a}", "limits: {max_size: &a 1M, memory_spool: *a}",
		"engines: [{name: a, type: builtin}, {name: a, type: builtin}]",
		"engines: [{name: s, type: sandbox, command: [x], ro_binds: [/tmp/x, relative]}]",
		"engines: [{name: s, type: sandbox, command: [x], report: {content_type: 'text/'}}]",
		"listen: a\n---\nlisten: b\n", "listen: a\nlisten: b\n", "<<: {listen: x}",
		"auth: {tokens: [{name: t, role: admin, token: x, token_file: y}]}",
		"rescan: {schedule: '* * * * * *'}", "keep_uploads_for: -1s", "queue: {ack_wait: 1ms}",
		"debug_listen: '0.0.0.0:6060'", "engines: [{name: c, type: clamd, address: x, addresses: [y]}]",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "lazaret.yaml")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(p, nil)
		again, err2 := Load(p, nil)
		if errString(err) != errString(err2) || (err == nil && !reflect.DeepEqual(cfg, again)) {
			t.Fatalf("Load(%q) twice: got %+v, %v and %+v, %v", data, cfg, err, again, err2)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config: ") {
				t.Fatalf("Load(%q): error %q, want it to start with \"config: \"", data, err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Load(%q) succeeded, but Validate again: %v", data, err)
		}
		if len(cfg.Engines) == 0 || cfg.Workers < 1 || cfg.Limits.MaxSize < 0 || cfg.Limits.MemorySpool < 0 {
			t.Fatalf("Load(%q) = %+v: want engines, a worker and no negative size", data, cfg)
		}
		names := map[string]bool{}
		for i, e := range cfg.Engines {
			switch e.Type {
			case TypeClamd, TypeBuiltin, TypeCommand, TypeSandbox:
			default:
				t.Fatalf("Load(%q): engines[%d] has type %q", data, i, e.Type)
			}
			if e.Name == "" || names[e.Name] {
				t.Fatalf("Load(%q): engines[%d] has name %q, want one not empty and used once", data, i, e.Name)
			}
			names[e.Name] = true
		}
	})
}

// errString is err's message, "" for nil.
func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
