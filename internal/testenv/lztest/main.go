// Command lztest helps CI and benchmark scripts set up the services tests
// use:
//
//	lztest sigs DIR          write the test signature database into DIR
//	lztest free-port         print a free TCP port on 127.0.0.1
//	lztest wait-clamd PORT   wait (up to 60 s) until clamd on 127.0.0.1:PORT answers PING
//	lztest wait-amqp PORT    wait (up to 90 s) until RabbitMQ on 127.0.0.1:PORT answers the AMQP header
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/lazaret/lazaret/internal/testenv"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "lztest:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: lztest sigs DIR | free-port | wait-clamd PORT")
	}
	switch {
	case args[0] == "sigs" && len(args) == 2:
		return testenv.WriteSignatures(args[1])
	case args[0] == "free-port" && len(args) == 1:
		p, err := testenv.FreePort()
		if err != nil {
			return err
		}
		fmt.Println(p)
		return nil
	case args[0] == "wait-amqp" && len(args) == 2:
		port, err := strconv.Atoi(args[1])
		if err != nil {
			return err
		}
		deadline := time.Now().Add(90 * time.Second)
		for {
			err := testenv.PingAMQP(port)
			if err == nil {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("rabbitmq on port %d: %w", port, err)
			}
			time.Sleep(250 * time.Millisecond)
		}
	case args[0] == "wait-clamd" && len(args) == 2:
		port, err := strconv.Atoi(args[1])
		if err != nil {
			return err
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			err := testenv.PingClamd(port)
			if err == nil {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("clamd on port %d: %w", port, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return fmt.Errorf("unknown command %q", args)
}
