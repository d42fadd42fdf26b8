package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeProgram writes an executable file named name into dir.
func fakeProgram(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	os.Remove(p) // WriteFile sets the mode of new files only
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// `lazaret operator ARGS...` hands every argument, flags and --help
// included, to lazaret-operator, with the global --config in front. The
// exec itself (cmd/lazaret's syscall.Exec) is tested on a built binary in
// cmd/lazaret.
func TestOperatorPassthrough(t *testing.T) {
	bin := t.TempDir()
	prog := fakeProgram(t, bin, OperatorProgram)
	t.Setenv("PATH", bin) // the test binary has no lazaret-operator beside it
	cfg := write(t, t.TempDir(), "lazaret.yaml", []byte("{}\n"))
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"no arguments: the controller", []string{"operator"}, []string{OperatorProgram}},
		{"help is the operator's", []string{"operator", "--help"}, []string{OperatorProgram, "--help"}},
		{"agent and its flags", []string{"operator", "agent", "--virusscan", "ns/vs", "--job", "j"},
			[]string{OperatorProgram, "agent", "--virusscan", "ns/vs", "--job", "j"}},
		{"flags lazaret does not know", []string{"operator", "--leader-elect", "--image=x"},
			[]string{OperatorProgram, "--leader-elect", "--image=x"}},
		{"after --", []string{"operator", "--", "run"}, []string{OperatorProgram, "--", "run"}},
		{"the global --config goes first", []string{"--config", cfg, "operator", "run"},
			[]string{OperatorProgram, "--config", cfg, "run"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var gotPath string
			var gotArgs []string
			var out, errb bytes.Buffer
			code := Run(context.Background(), tc.args, Env{Stdout: &out, Stderr: &errb,
				Exec: func(path string, args []string) error {
					gotPath, gotArgs = path, args
					return errors.New("exec refused")
				}})
			if gotPath != prog || !slices.Equal(gotArgs, tc.want) {
				t.Errorf("exec: got %q %q, want %q %q", gotPath, gotArgs, prog, tc.want)
			}
			// Exec returns only when it failed.
			if code != ExitError || !strings.Contains(errb.String(), "exec "+prog+": exec refused") {
				t.Errorf("after a failed exec: got exit %d, stderr %q; want exit %d and the error", code, errb.String(), ExitError)
			}
			if out.Len() != 0 {
				t.Errorf("stdout: got %q, want nothing (lazaret-operator prints its own help)", out.String())
			}
		})
	}
}

func TestOperatorMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // an empty PATH folder: lazaret-operator is nowhere
	for _, args := range [][]string{{"operator"}, {"operator", "--help"}, {"operator", "agent", "--virusscan", "ns/vs"}} {
		var errb bytes.Buffer
		execd := false
		code := Run(context.Background(), args, Env{Stdout: &bytes.Buffer{}, Stderr: &errb,
			Exec: func(string, []string) error { execd = true; return nil }})
		if code != ExitError || execd {
			t.Errorf("lazaret %s: got exit %d, exec called %v; want exit %d, no exec", strings.Join(args, " "), code, execd, ExitError)
		}
		for _, want := range []string{"lazaret-operator not found", "go build ./cmd/lazaret-operator", "image"} {
			if !strings.Contains(errb.String(), want) {
				t.Errorf("lazaret %s: stderr %q, want it to say %q", strings.Join(args, " "), errb.String(), want)
			}
		}
	}
	// Found, but nothing to exec with (Env.Exec nil): an error, not a panic.
	t.Setenv("PATH", filepath.Dir(fakeProgram(t, t.TempDir(), OperatorProgram)))
	code, _, errOut := run(t, "", "operator")
	if code != ExitError || !strings.Contains(errOut, "cannot replace this process") {
		t.Errorf("without Env.Exec: got exit %d, stderr %q; want exit %d", code, errOut, ExitError)
	}
}

func TestFindOperator(t *testing.T) {
	beside := t.TempDir()
	exe := filepath.Join(beside, "lazaret")
	onPath := fakeProgram(t, t.TempDir(), OperatorProgram)
	executable := func() (string, error) { return exe, nil }
	noExecutable := func() (string, error) { return "", errors.New("no /proc") }
	lookPath := func(string) (string, error) { return onPath, nil }
	notOnPath := func(name string) (string, error) { return "", &exec.Error{Name: name, Err: exec.ErrNotFound} }
	brokenPath := func(name string) (string, error) { return "", &exec.Error{Name: name, Err: exec.ErrDot} }

	check := func(name string, executable func() (string, error), lookPath func(string) (string, error), want string, wantErr error) {
		t.Helper()
		got, err := findOperator(executable, lookPath)
		if got != want || (wantErr == nil) != (err == nil) || (wantErr != nil && !errors.Is(err, wantErr)) {
			t.Errorf("%s: got %q, %v; want %q, %v", name, got, err, want, wantErr)
		}
	}
	check("nothing beside: PATH", executable, lookPath, onPath, nil)
	check("nowhere", executable, notOnPath, "", errNoOperator)
	check("PATH's own error", executable, brokenPath, "", exec.ErrDot)
	check("no executable path: PATH", noExecutable, lookPath, onPath, nil)

	// A file beside lazaret that is not executable, or a folder, is passed over.
	if err := os.WriteFile(filepath.Join(beside, OperatorProgram), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	check("not executable beside: PATH", executable, lookPath, onPath, nil)
	dirBeside := t.TempDir()
	if err := os.Mkdir(filepath.Join(dirBeside, OperatorProgram), 0o755); err != nil {
		t.Fatal(err)
	}
	check("a folder beside: PATH", func() (string, error) { return filepath.Join(dirBeside, "lazaret"), nil }, lookPath, onPath, nil)

	// Beside lazaret wins over PATH.
	besideProg := fakeProgram(t, beside, OperatorProgram)
	check("beside", executable, lookPath, besideProg, nil)
	check("beside, nothing in PATH", executable, notOnPath, besideProg, nil)
}
