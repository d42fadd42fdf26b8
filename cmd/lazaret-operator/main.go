// Command lazaret-operator is lazaret's Kubernetes operator: the controller
// for KubeAV's VirusScan and ScheduledVirusScan resources and the agent its
// scan Jobs run. It is a program of its own so that the Kubernetes packages
// stay out of the lazaret binary; `lazaret operator ARGS...` runs it. See
// docs/OPERATOR.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/lazaret/lazaret/internal/cli"
	"github.com/lazaret/lazaret/internal/operator/operatorcli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := operatorcli.Run(ctx, os.Args[1:], cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
	stop()
	os.Exit(code)
}
