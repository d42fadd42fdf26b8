// Command rss runs a command and prints its wall time and peak resident
// memory (from the kernel's rusage), so benchmark scripts need no GNU time.
//
//	go run ./bench/rss -- lazaret scan big.iso
package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: rss -- COMMAND [ARG...]")
		os.Exit(2)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			fmt.Fprintln(os.Stderr, "rss:", err)
			os.Exit(2)
		}
		code = ee.ExitCode()
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	fmt.Fprintf(os.Stderr, "rss: wall=%.3fs maxrss=%.1fMiB exit=%d\n", wall.Seconds(), float64(ru.Maxrss)/1024, code)
	os.Exit(code)
}
