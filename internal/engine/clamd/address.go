package clamd

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// address is a parsed clamd address: the network and address net.Dial
// takes, in a canonical spelling, and the form the user wrote (for logs
// and errors).
//
// addr is canonical so that two spellings of one daemon compare equal:
// Config.validate refuses an address listed twice by comparing them, and
// a daemon listed twice under two spellings would get two pools, twice
// the connections it was sized for and twice the share of the scans.
type address struct {
	network string // "tcp" or "unix"
	addr    string // canonical "host:port" or "/path/clamd.sock"
	raw     string
}

func (a address) String() string { return a.raw }

// canonical returns the address written in its canonical form, with its
// scheme: parseAddress(a.canonical()) is a again, with that raw form.
func (a address) canonical() string { return a.network + "://" + a.addr }

// parseAddress accepts "tcp://host:port", "unix:///path" and a bare
// "host:port" (what CLAMD_ENDPOINT:CLAMD_PORT style settings produce).
// See canonicalHostPort and canonicalPath for what is taken as the same
// address.
func parseAddress(s string) (address, error) {
	switch {
	case s == "":
		return address{}, errors.New("empty address")
	case strings.HasPrefix(s, "unix://"):
		p := strings.TrimPrefix(s, "unix://")
		if !strings.HasPrefix(p, "/") {
			return address{}, fmt.Errorf("%q: a unix address needs an absolute path (unix:///run/clamav/clamd.ctl)", s)
		}
		return address{network: "unix", addr: canonicalPath(p), raw: s}, nil
	case strings.HasPrefix(s, "tcp://"):
		hp, err := canonicalHostPort(strings.TrimPrefix(s, "tcp://"))
		if err != nil {
			return address{}, fmt.Errorf("%q: %w", s, err)
		}
		return address{network: "tcp", addr: hp, raw: s}, nil
	case strings.Contains(s, "://"):
		return address{}, fmt.Errorf("%q: unknown scheme (tcp:// or unix://)", s)
	}
	hp, err := canonicalHostPort(s)
	if err != nil {
		return address{}, fmt.Errorf("%q: %w", s, err)
	}
	return address{network: "tcp", addr: hp, raw: s}, nil
}

// canonicalHostPort checks a "host:port" and writes it the one way among
// those net.Dial reads as the same:
//
//   - the port as a plain decimal number ("080" and "+80" are 80);
//   - an IP address as netip prints it ("[0:0::1]" is "[::1]", an
//     IPv4-mapped "[::ffff:127.0.0.1]" is "127.0.0.1", which is where the
//     dialer connects), its zone kept as written, for interface names are
//     case-sensitive;
//   - a host name in lower case, for DNS and the hosts file ignore the
//     case of ASCII letters.
//
// A trailing dot is kept: "clamd." is a fully qualified name, while
// "clamd" may go through the resolver's search domains and reach another
// host, so the two are not the same address.
func canonicalHostPort(hp string) (string, error) {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return "", err
	}
	if host == "" {
		return "", errors.New("missing host")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("bad port %q", port)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() == "" {
			ip = ip.Unmap()
		}
		host = ip.String()
	} else {
		host = lowerASCII(host)
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

// canonicalPath drops the empty and "." elements of an absolute socket
// path ("/run//clamav/./clamd.ctl" is "/run/clamav/clamd.ctl"), which name
// the same file whatever the file system holds. ".." is kept: after a
// symbolic link it does not cancel the element before it. So is a
// trailing "/" (or "/."): it asks for a folder, and connect fails on a
// socket named that way, which the address without it would reach.
func canonicalPath(p string) string {
	elems := strings.Split(p[1:], "/")
	last := elems[len(elems)-1]
	var b strings.Builder
	for _, e := range elems {
		if e != "" && e != "." {
			b.WriteString("/")
			b.WriteString(e)
		}
	}
	if b.Len() == 0 || last == "" || last == "." {
		b.WriteString("/")
	}
	return b.String()
}

// lowerASCII lowers the ASCII letters of s and leaves every other byte as
// it is, as DNS compares names.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
