package clamd

import (
	"net"
	"net/netip"
	"slices"
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
//   - a unix address is the path after "unix://" with its empty and "."
//     elements dropped, and no other element dropped or changed;
//   - a tcp address is the host:port after "tcp://" (or the whole bare
//     input), with a host, and a port that net.Dial reads as the same
//     number in 1..65535, written in decimal; an IP host is the same IP
//     written as netip prints it, any other host the input's in lower
//     case;
//   - parse(format(a)) == a: the canonical form parses to the same
//     network and address, and is its own raw form;
//   - other spellings of the same address (upper-case host, padded
//     port, doubled slashes, "." elements, scheme or none) parse to the
//     same canonical form.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{
		"tcp://127.0.0.1:3310", "tcp://clamd.internal:3310", "tcp://[::1]:3310", "127.0.0.1:3310", "clamav:3310",
		"unix:///run/clamav/clamd.ctl", "", "unix://relative.sock", "unix://", "tcp://127.0.0.1", "tcp://:3310",
		"tcp://127.0.0.1:0", "tcp://127.0.0.1:70000", "tcp://127.0.0.1:clamd", "http://127.0.0.1:3310",
		"/run/clamav/clamd.ctl", "tcp://h:65535", "tcp://h:65536", "h:+80", "h:0080", "[fe80::1%eth0]:1",
		"unix:///", "TCP://h:1", "tcp://unix:///x:1", "unix:/x", "tcp://h:1/x",
		"tcp://H:080", "[::FFFF:127.0.0.1]:1", "[0:0::1]:1", "[FE80::1%Eth0]:1", "clamd.:1", "[127.0.0.1]:1",
		"unix:///run//./clamd.ctl", "unix:///run/../x/", "unix:///x/.", "unix:////",
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
		var variants []string
		switch a.network {
		case "unix":
			p, ok := strings.CutPrefix(s, "unix://")
			if !ok || !strings.HasPrefix(a.addr, "/") || !strings.HasPrefix(p, "/") {
				t.Fatalf("parseAddress(%q) = unix %q: want the absolute path after unix://", s, a.addr)
			}
			if got, want := pathElems(a.addr), pathElems(p); !slices.Equal(got, want) || strings.Contains(a.addr, "//") || strings.Contains(a.addr+"/", "/./") {
				t.Fatalf("parseAddress(%q) = unix %q: elements %q, want %q with no empty or \".\" ones", s, a.addr, got, want)
			}
			variants = []string{
				"unix://" + strings.ReplaceAll(a.addr, "/", "//"),
				"unix://" + strings.ReplaceAll(a.addr, "/", "/./"),
			}
		case "tcp":
			hp, ok := strings.CutPrefix(s, "tcp://")
			if !ok && strings.Contains(s, "://") {
				t.Fatalf("parseAddress(%q) = tcp %q: want tcp:// or no scheme", s, a.addr)
			}
			inHost, inPort, err := net.SplitHostPort(hp)
			if err != nil {
				t.Fatalf("parseAddress(%q) = tcp %q, but %q is not host:port: %v", s, a.addr, hp, err)
			}
			host, port, err := net.SplitHostPort(a.addr)
			if err != nil || host == "" {
				t.Fatalf("parseAddress(%q) = tcp %q: host %q, %v; want host:port", s, a.addr, host, err)
			}
			n, err := strconv.Atoi(port)
			if p, lerr := net.LookupPort("tcp", inPort); err != nil || lerr != nil || p != n || n < 1 || n > 65535 || port != strconv.Itoa(n) {
				t.Fatalf("parseAddress(%q) = tcp %q: port %q is %d, %v; net.Dial reads %q as %d, %v", s, a.addr, port, n, err, inPort, p, lerr)
			}
			// An upper-case host (an IP's zone, case-sensitive, left
			// alone), a padded port, a signed port, with and without
			// the scheme.
			upper := upperASCII(host)
			if ip, err := netip.ParseAddr(inHost); err == nil {
				got, err := netip.ParseAddr(host)
				if err != nil || got.String() != host || (got != ip && got != ip.Unmap()) {
					t.Fatalf("parseAddress(%q) = tcp %q: host %q, want IP %v as netip prints it", s, a.addr, host, ip)
				}
				if i := strings.IndexByte(host, '%'); i >= 0 {
					upper = upperASCII(host[:i]) + host[i:]
				}
			} else if !lowerOf(host, inHost) {
				t.Fatalf("parseAddress(%q) = tcp %q: host %q, want %q in lower case", s, a.addr, host, inHost)
			}
			variants = append(variants, net.JoinHostPort(upper, "0"+port), a.addr, "tcp://"+net.JoinHostPort(host, "+"+port))
		default:
			t.Fatalf("parseAddress(%q) = network %q, want tcp or unix", s, a.network)
		}
		c := a.canonical()
		if again, err := parseAddress(c); err != nil || again != (address{network: a.network, addr: a.addr, raw: c}) {
			t.Fatalf("parseAddress(%q) = %+v, but parseAddress(%q) = %+v, %v", s, a, c, again, err)
		}
		for _, v := range variants {
			if other, err := parseAddress(v); err != nil || other.canonical() != c {
				t.Fatalf("parseAddress(%q) = %s, but parseAddress(%q) = %s, %v: want the same address", s, c, v, other.canonical(), err)
			}
		}
	})
}

// upperASCII raises the ASCII letters of s and leaves every other byte.
func upperASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// lowerOf reports whether lower is s with its ASCII letters, and nothing
// else, in lower case.
func lowerOf(lower, s string) bool {
	if len(lower) != len(s) {
		return false
	}
	for i := range len(s) {
		l, c := lower[i], s[i]
		if 'A' <= l && l <= 'Z' || l != c && (c < 'A' || c > 'Z' || l != c+'a'-'A') {
			return false
		}
	}
	return true
}

// pathElems returns the elements of a slash-separated path that name
// something: not the empty ones (doubled or trailing slashes) nor ".".
func pathElems(p string) []string {
	var out []string
	for e := range strings.SplitSeq(p, "/") {
		if e != "" && e != "." {
			out = append(out, e)
		}
	}
	return out
}
