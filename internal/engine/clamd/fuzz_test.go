package clamd

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseAddress checks parseAddress on any configured address:
//
//   - an error gives the zero address and quotes the input;
//   - a success keeps the input as written (raw, String) and has the
//     network its scheme names: "unix" for unix://, "tcp" for tcp:// and
//     for a bare host:port (which holds no "://");
//   - a unix address is the absolute path after "unix://";
//   - a tcp address is the host:port after "tcp://" (or the whole bare
//     input), with a host, and a port that net.Dial reads as the same
//     number in 1..65535;
//   - the address written with its network's scheme parses to the same
//     network and address.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{
		"tcp://127.0.0.1:3310", "tcp://clamd.internal:3310", "tcp://[::1]:3310", "127.0.0.1:3310", "clamav:3310",
		"unix:///run/clamav/clamd.ctl", "", "unix://relative.sock", "unix://", "tcp://127.0.0.1", "tcp://:3310",
		"tcp://127.0.0.1:0", "tcp://127.0.0.1:70000", "tcp://127.0.0.1:clamd", "http://127.0.0.1:3310",
		"/run/clamav/clamd.ctl", "tcp://h:65535", "tcp://h:65536", "h:+80", "h:0080", "[fe80::1%eth0]:1",
		"unix:///", "TCP://h:1", "tcp://unix:///x:1", "unix:/x", "tcp://h:1/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := parseAddress(s)
		if err != nil {
			if a != (address{}) || (s != "" && !strings.Contains(err.Error(), strconv.Quote(s))) {
				t.Fatalf("parseAddress(%q) = %+v, %v; want the zero address and an error quoting the input", s, a, err)
			}
			return
		}
		if a.raw != s || a.String() != s {
			t.Fatalf("parseAddress(%q) = %+v, String %q: want the input kept as written", s, a, a)
		}
		var scheme string
		switch a.network {
		case "unix":
			scheme = "unix://"
			if s != scheme+a.addr || !strings.HasPrefix(a.addr, "/") {
				t.Fatalf("parseAddress(%q) = unix %q: want the absolute path after unix://", s, a.addr)
			}
		case "tcp":
			scheme = "tcp://"
			if s != scheme+a.addr && (s != a.addr || strings.Contains(s, "://")) {
				t.Fatalf("parseAddress(%q) = tcp %q: want tcp:// or no scheme", s, a.addr)
			}
			host, port, err := net.SplitHostPort(a.addr)
			if err != nil || host == "" {
				t.Fatalf("parseAddress(%q) = tcp %q: host %q, %v; want host:port", s, a.addr, host, err)
			}
			n, err := strconv.Atoi(port)
			if p, lerr := net.LookupPort("tcp", port); err != nil || lerr != nil || p != n || n < 1 || n > 65535 {
				t.Fatalf("parseAddress(%q) = tcp %q: port %q is %d, %v; net.Dial reads %d, %v", s, a.addr, port, n, err, p, lerr)
			}
		default:
			t.Fatalf("parseAddress(%q) = network %q, want tcp or unix", s, a.network)
		}
		if again, err := parseAddress(scheme + a.addr); err != nil || again.network != a.network || again.addr != a.addr {
			t.Fatalf("parseAddress(%q) = %+v, but parseAddress(%q) = %+v, %v", s, a, scheme+a.addr, again, err)
		}
	})
}
