package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
)

// OperatorProgram is the program `lazaret operator` runs. The Kubernetes
// operator is a binary of its own (cmd/lazaret-operator) so that the
// Kubernetes packages, their size and their start-up cost stay out of
// every other lazaret command.
const OperatorProgram = "lazaret-operator"

// operatorCmd is `lazaret operator [ARGS...]`: it replaces this process
// with lazaret-operator, given the same arguments, so that signals, output
// and the exit code are the operator's own.
type operatorCmd struct {
	Args []string `arg:"" optional:"" help:"lazaret-operator's arguments: run (the default) or agent, and their flags."`
}

// errNoOperator is what `lazaret operator` reports when lazaret-operator is
// neither beside lazaret nor in PATH.
var errNoOperator = errors.New(OperatorProgram + " not found beside lazaret or in PATH: the Kubernetes operator is a program of its own; " +
	"build it with `go build ./cmd/" + OperatorProgram + "` and put it beside lazaret or in PATH, or use lazaret's container image, which has both")

func (c *operatorCmd) run(g *globals, env Env) int {
	path, err := findOperator(os.Executable, exec.LookPath)
	if err != nil {
		return errorf(env, fmt.Errorf("operator: %w", err))
	}
	if env.Exec == nil {
		return errorf(env, errors.New("operator: cannot replace this process with "+path))
	}
	args := []string{OperatorProgram}
	if g.Config != "" { // given before `operator`, or LAZARET_CONFIG
		args = append(args, "--config", g.Config)
	}
	args = append(args, c.Args...)
	err = env.Exec(path, args)
	return errorf(env, fmt.Errorf("operator: exec %s: %w", path, err))
}

// findOperator returns the path of lazaret-operator: the file beside the
// running executable (a release or an image ships both), else the one
// found in PATH.
func findOperator(executable func() (string, error), lookPath func(string) (string, error)) (string, error) {
	if exe, err := executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), OperatorProgram)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := lookPath(OperatorProgram)
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			return "", errNoOperator
		}
		return "", fmt.Errorf("%s: %w", OperatorProgram, err)
	}
	return p, nil
}
