package clamd

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// address is a parsed clamd address: the network and address net.Dial
// takes, and the form the user wrote (for logs and errors).
type address struct {
	network string // "tcp" or "unix"
	addr    string // "host:port" or "/path/clamd.sock"
	raw     string
}

func (a address) String() string { return a.raw }

// parseAddress accepts "tcp://host:port", "unix:///path" and a bare
// "host:port" (what CLAMD_ENDPOINT:CLAMD_PORT style settings produce).
func parseAddress(s string) (address, error) {
	switch {
	case s == "":
		return address{}, errors.New("empty address")
	case strings.HasPrefix(s, "unix://"):
		p := strings.TrimPrefix(s, "unix://")
		if !strings.HasPrefix(p, "/") {
			return address{}, fmt.Errorf("%q: a unix address needs an absolute path (unix:///run/clamav/clamd.ctl)", s)
		}
		return address{network: "unix", addr: p, raw: s}, nil
	case strings.HasPrefix(s, "tcp://"):
		hp := strings.TrimPrefix(s, "tcp://")
		if err := checkHostPort(hp); err != nil {
			return address{}, fmt.Errorf("%q: %w", s, err)
		}
		return address{network: "tcp", addr: hp, raw: s}, nil
	case strings.Contains(s, "://"):
		return address{}, fmt.Errorf("%q: unknown scheme (tcp:// or unix://)", s)
	}
	if err := checkHostPort(s); err != nil {
		return address{}, fmt.Errorf("%q: %w", s, err)
	}
	return address{network: "tcp", addr: s, raw: s}, nil
}

func checkHostPort(hp string) error {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("missing host")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}
