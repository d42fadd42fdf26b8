package operatorcli

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lazaret/lazaret/internal/cli"
	"github.com/lazaret/lazaret/internal/operator"
)

// run runs lazaret-operator's command line in-process.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, cli.Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
	return code, out.String(), errb.String()
}

// The command line's wiring: the end-to-end tests against a real API
// server are in internal/operator (they run the agent through Run).
func TestCommandLine(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.kubeconfig")
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // in stdout
		wantErr  string // in stderr
	}{
		{"help lists the agent", []string{"--help"}, cli.ExitClean, "agent", ""},
		{"help names the program", []string{"--help"}, cli.ExitClean, "lazaret-operator", ""},
		{"run's help lists its flags", []string{"run", "--help"}, cli.ExitClean, "--leader-elect", ""},
		{"agent needs its VirusScan", []string{"agent"}, cli.ExitError, "", "--virusscan"},
		{"agent wants namespace/name", []string{"agent", "--virusscan", "just-a-name"}, cli.ExitError, "", "want NAMESPACE/NAME"},
		{"agent without a cluster", []string{"agent", "--virusscan", "ns/vs", "--kubeconfig", missing}, cli.ExitError, "", "kubernetes: config:"},
		{"run without a cluster", []string{"--kubeconfig", missing}, cli.ExitError, "", "kubernetes: config:"},
		{"named run without a cluster", []string{"run", "--kubeconfig", missing}, cli.ExitError, "", "kubernetes: config:"},
		{"bad pull policy", []string{"--image-pull-policy", "Sometimes"}, cli.ExitError, "", "image-pull-policy"},
		{"negative deadline", []string{"--active-deadline=-1s", "--kubeconfig", missing}, cli.ExitError, "", "--active-deadline -1s"},
		{"bad config", []string{"--config", missing, "agent", "--virusscan", "ns/vs"}, cli.ExitError, "", "missing.kubeconfig"},
		{"unknown command", []string{"sweep"}, cli.ExitError, "", "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, tc.args...)
			if code != tc.wantCode || !strings.Contains(out, tc.wantOut) || !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("got exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
					code, out, errOut, tc.wantCode, tc.wantOut, tc.wantErr)
			}
		})
	}
}

// A scan Job is bounded by default (the operator's
// DefaultActiveDeadline); --active-deadline 0 is no bound, which the
// operator's Options spell negative (their 0 is the default).
func TestActiveDeadlineFlag(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want time.Duration
	}{
		{"default", nil, operator.DefaultActiveDeadline},
		{"zero is no bound", []string{"--active-deadline", "0"}, -1},
		{"given", []string{"--active-deadline", "90m"}, 90 * time.Minute},
		{"named run", []string{"run", "--active-deadline=2h"}, 2 * time.Hour},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := cli.Env{Stdout: io.Discard, Stderr: io.Discard, Getenv: func(string) string { return "" }}
			var r root
			if _, _, exited, err := cli.Parse(&r, cli.OperatorProgram, "", tt.args, env); exited || err != nil {
				t.Fatalf("parse %q: exited %v, err %v", tt.args, exited, err)
			}
			opts, err := r.Run.options(env)
			if err != nil {
				t.Fatal(err)
			}
			if opts.ActiveDeadline != tt.want {
				t.Errorf("ActiveDeadline: got %s, want %s", opts.ActiveDeadline, tt.want)
			}
		})
	}
}

// The Deployment in deploy/operator runs `lazaret operator` (the image's
// entry point) with flags this command line has.
func TestDeploymentArgs(t *testing.T) {
	raw, err := os.ReadFile("../../../deploy/operator/operator.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var d struct {
			Kind string `yaml:"kind"`
			Spec struct {
				Template struct {
					Spec struct {
						Containers []struct {
							Command []string `yaml:"command"`
							Args    []string `yaml:"args"`
						} `yaml:"containers"`
					} `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		}
		if err := yaml.Unmarshal([]byte(doc), &d); err != nil {
			t.Fatalf("operator.yaml: %v", err)
		}
		if d.Kind == "Deployment" {
			if c := d.Spec.Template.Spec.Containers[0].Command; c != nil {
				t.Fatalf("Deployment command: got %q, want none (the image's entry point, lazaret)", c)
			}
			args = d.Spec.Template.Spec.Containers[0].Args
		}
	}
	if len(args) < 2 || args[0] != "operator" {
		t.Fatalf("Deployment args: got %q, want lazaret operator ...", args)
	}
	args = args[1:] // what `lazaret operator` hands to lazaret-operator
	// --help last: kong refuses an unknown flag before it gets there.
	code, _, errOut := run(t, append(args, "--help")...)
	if code != cli.ExitClean {
		t.Errorf("lazaret-operator %s --help: exit %d, stderr %q", strings.Join(args, " "), code, errOut)
	}
	code, _, errOut = run(t, "--leader-elect", "--no-such-flag", "--help")
	if code == cli.ExitClean {
		t.Errorf("an unknown flag before --help: got exit 0 (%q), so the check above proves nothing", errOut)
	}
}
