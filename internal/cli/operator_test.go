package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The operator's wiring: its end-to-end tests against a real API server
// are in internal/operator (they run `lazaret operator agent` through Run).
func TestOperatorCommandLine(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.kubeconfig")
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // in stdout
		wantErr  string // in stderr
	}{
		{"help lists the agent", []string{"operator", "--help"}, ExitClean, "agent", ""},
		{"run's help lists its flags", []string{"operator", "run", "--help"}, ExitClean, "--leader-elect", ""},
		{"agent needs its VirusScan", []string{"operator", "agent"}, ExitError, "", "--virusscan"},
		{"agent wants namespace/name", []string{"operator", "agent", "--virusscan", "just-a-name"}, ExitError, "", "want NAMESPACE/NAME"},
		{"agent without a cluster", []string{"operator", "agent", "--virusscan", "ns/vs", "--kubeconfig", missing}, ExitError, "", "kubernetes: config:"},
		{"operator without a cluster", []string{"operator", "--kubeconfig", missing}, ExitError, "", "kubernetes: config:"},
		{"bad pull policy", []string{"operator", "--image-pull-policy", "Sometimes"}, ExitError, "", "image-pull-policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, "", tc.args...)
			if code != tc.wantCode || !strings.Contains(out, tc.wantOut) || !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("got exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
					code, out, errOut, tc.wantCode, tc.wantOut, tc.wantErr)
			}
		})
	}
}

// The Deployment in deploy/operator runs flags this command line has.
func TestOperatorDeploymentArgs(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/operator/operator.yaml")
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
							Args []string `yaml:"args"`
						} `yaml:"containers"`
					} `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		}
		if err := yaml.Unmarshal([]byte(doc), &d); err != nil {
			t.Fatalf("operator.yaml: %v", err)
		}
		if d.Kind == "Deployment" {
			args = d.Spec.Template.Spec.Containers[0].Args
		}
	}
	if len(args) < 2 || args[0] != "operator" {
		t.Fatalf("Deployment args: got %q, want lazaret operator ...", args)
	}
	// --help last: kong refuses an unknown flag before it gets there.
	code, _, errOut := run(t, "", append(args, "--help")...)
	if code != ExitClean {
		t.Errorf("lazaret %s --help: exit %d, stderr %q", strings.Join(args, " "), code, errOut)
	}
	code, _, errOut = run(t, "", "operator", "--leader-elect", "--no-such-flag", "--help")
	if code == ExitClean {
		t.Errorf("an unknown flag before --help: got exit 0 (%q), so the check above proves nothing", errOut)
	}
}
