// Command lazaret scans untrusted files with real engines, keeps every
// verdict, acts on it and tells the systems that care. See README.md.
package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/lazaret/lazaret/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	env := cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv,
		Exec: func(path string, args []string) error {
			stop() // from here on a signal has its default effect, as in the program exec'd
			if err := context.Cause(ctx); !errors.Is(err, context.Canceled) {
				return err // a signal came first
			}
			return syscall.Exec(path, args, os.Environ())
		}}
	code := cli.Run(ctx, os.Args[1:], env)
	stop()
	os.Exit(code)
}
