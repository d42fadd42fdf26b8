package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// goCommand returns the go command, skipping the test without one
// (required under CI).
func goCommand(t *testing.T) string {
	t.Helper()
	g, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI: no go command: %v", err)
		}
		t.Skipf("no go command: %v", err)
	}
	return g
}

// The Kubernetes packages are lazaret-operator's alone: every lazaret
// process (a `lazaret scan` per file, the server) would otherwise pay for
// their size and their init, about 20 MB of memory and 10 ms each.
func TestNoKubernetes(t *testing.T) {
	g := goCommand(t)
	deps := func(pkg string) []string {
		out, err := exec.Command(g, "list", "-deps", pkg).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("go list -deps %s: %v: %s", pkg, err, ee.Stderr)
			}
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	kube := func(pkgs []string) []string {
		var k []string
		for _, p := range pkgs {
			if strings.HasPrefix(p, "k8s.io/") || strings.HasPrefix(p, "sigs.k8s.io/") {
				k = append(k, p)
			}
		}
		return k
	}
	if k := kube(deps(".")); len(k) > 0 {
		t.Errorf("cmd/lazaret depends on %d Kubernetes packages, e.g. %s; they belong in cmd/lazaret-operator only (go list -deps shows which import brings them)", len(k), k[0])
	}
	// The check can see them: lazaret-operator has them.
	if k := kube(deps("../lazaret-operator")); len(k) == 0 {
		t.Errorf("cmd/lazaret-operator: no Kubernetes packages in its dependencies, so the check above proves nothing")
	}
}

// `lazaret operator ARGS...` becomes lazaret-operator (found beside the
// lazaret binary, else in PATH) with the same arguments: its output, its
// exit code, its process.
func TestOperatorExec(t *testing.T) {
	if testing.Short() {
		t.Skip("builds lazaret")
	}
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh for the fake lazaret-operator")
	}
	g := goCommand(t)
	dir := t.TempDir()
	lz := filepath.Join(dir, "lazaret")
	if out, err := exec.Command(g, "build", "-o", lz, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	fake := func(dir string) {
		t.Helper()
		script := "#!/bin/sh\necho \"$0 $*\"\necho \"pid $$\"\nexit 7\n"
		if err := os.WriteFile(filepath.Join(dir, "lazaret-operator"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	emptyPath := t.TempDir()
	run := func(path string, args ...string) (int, string, string, int) {
		t.Helper()
		cmd := exec.Command(lz, args...)
		cmd.Env = append(os.Environ(), "PATH="+path)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("lazaret %s: %v", strings.Join(args, " "), err)
		}
		return cmd.ProcessState.ExitCode(), out.String(), errb.String(), cmd.Process.Pid
	}

	// Absent: exit 2 and how to get it.
	code, _, errOut, _ := run(emptyPath, "operator", "agent", "--virusscan", "ns/vs")
	if code != 2 || !strings.Contains(errOut, "lazaret-operator not found") || !strings.Contains(errOut, "go build ./cmd/lazaret-operator") {
		t.Errorf("without lazaret-operator: got exit %d, stderr %q; want exit 2 and how to get it", code, errOut)
	}

	// In PATH.
	inPath := t.TempDir()
	fake(inPath)
	code, out, _, pid := run(inPath, "operator", "--help")
	if want := filepath.Join(inPath, "lazaret-operator") + " --help\npid "; code != 7 || !strings.HasPrefix(out, want) {
		t.Errorf("lazaret-operator in PATH: got exit %d, stdout %q; want exit 7, stdout %q...", code, out, want)
	}
	if !strings.Contains(out, "pid "+strconv.Itoa(pid)+"\n") {
		t.Errorf("stdout %q: want the same process, pid %d (exec, not a child)", out, pid)
	}

	// Beside lazaret, before PATH; the global --config goes in front.
	fake(dir)
	code, out, _, _ = run(inPath, "--config", "/etc/lazaret.yaml", "operator", "agent", "--virusscan", "ns/vs")
	if want := filepath.Join(dir, "lazaret-operator") + " --config /etc/lazaret.yaml agent --virusscan ns/vs\n"; code != 7 || !strings.HasPrefix(out, want) {
		t.Errorf("lazaret-operator beside lazaret: got exit %d, stdout %q; want exit 7, stdout %q...", code, out, want)
	}
}
