package clamd

import (
	"strings"
	"testing"
	"time"
)

func TestParseAddress(t *testing.T) {
	for _, tc := range []struct {
		in, network, addr, err string
	}{
		{"tcp://127.0.0.1:3310", "tcp", "127.0.0.1:3310", ""},
		{"tcp://clamd.internal:3310", "tcp", "clamd.internal:3310", ""},
		{"tcp://[::1]:3310", "tcp", "[::1]:3310", ""},
		{"127.0.0.1:3310", "tcp", "127.0.0.1:3310", ""},
		{"clamav:3310", "tcp", "clamav:3310", ""},
		{"unix:///run/clamav/clamd.ctl", "unix", "/run/clamav/clamd.ctl", ""},
		{"", "", "", "empty address"},
		{"unix://relative.sock", "", "", "absolute path"},
		{"unix://", "", "", "absolute path"},
		{"tcp://127.0.0.1", "", "", "missing port"},
		{"tcp://:3310", "", "", "missing host"},
		{"tcp://127.0.0.1:0", "", "", "bad port"},
		{"tcp://127.0.0.1:70000", "", "", "bad port"},
		{"tcp://127.0.0.1:clamd", "", "", "bad port"},
		{"http://127.0.0.1:3310", "", "", "unknown scheme"},
		{"/run/clamav/clamd.ctl", "", "", "missing port"},
		// Canonical spellings: what net.Dial reads as the same address is
		// written one way.
		{"tcp://h:080", "tcp", "h:80", ""},
		{"h:+80", "tcp", "h:80", ""},
		{"tcp://ClamD.Internal:3310", "tcp", "clamd.internal:3310", ""},
		{"clamd.internal.:3310", "tcp", "clamd.internal.:3310", ""},
		{"tcp://[0:0::0001]:3310", "tcp", "[::1]:3310", ""},
		{"[FE80::1%Eth0]:1", "tcp", "[fe80::1%Eth0]:1", ""},
		{"[::ffff:127.0.0.1]:3310", "tcp", "127.0.0.1:3310", ""},
		{"[127.0.0.1]:3310", "tcp", "127.0.0.1:3310", ""},
		{"unix:///run//clamav/./clamd.ctl", "unix", "/run/clamav/clamd.ctl", ""},
		{"unix:///run/clamav/../clamd.ctl", "unix", "/run/clamav/../clamd.ctl", ""},
		{"unix:///run/clamd.ctl//", "unix", "/run/clamd.ctl/", ""},
		{"unix:///run/clamd.ctl/.", "unix", "/run/clamd.ctl/", ""},
		{"unix:////", "unix", "/", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			a, err := parseAddress(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.network != tc.network || a.addr != tc.addr || a.String() != tc.in {
				t.Errorf("got %s %s (%s), want %s %s (%s)", a.network, a.addr, a, tc.network, tc.addr, tc.in)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	good := Config{Name: "clamav", Addresses: []string{"tcp://127.0.0.1:3310"}}
	for _, tc := range []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"no name", func(c *Config) { c.Name = "" }, "name: required"},
		{"no addresses", func(c *Config) { c.Addresses = nil }, "addresses: at least one"},
		{"bad address", func(c *Config) { c.Addresses = []string{"tcp://127.0.0.1:3310", "ftp://x:1"} }, "addresses[1]: \"ftp://x:1\": unknown scheme"},
		{"duplicate address", func(c *Config) { c.Addresses = []string{"tcp://127.0.0.1:3310", "127.0.0.1:3310"} }, "addresses[1]: \"127.0.0.1:3310\" is listed twice: addresses[0] \"tcp://127.0.0.1:3310\" is the same address"},
		{"duplicate port spelling", func(c *Config) { c.Addresses = []string{"tcp://h:080", "h:80"} }, "addresses[1]: \"h:80\" is listed twice: addresses[0] \"tcp://h:080\""},
		{"duplicate host case", func(c *Config) { c.Addresses = []string{"tcp://127.0.0.1:3310", "ClamD:3310", "tcp://clamd:3310"} }, "addresses[2]: \"tcp://clamd:3310\" is listed twice: addresses[1] \"ClamD:3310\""},
		{"duplicate ipv6 spelling", func(c *Config) { c.Addresses = []string{"[::1]:3310", "tcp://[0::01]:3310"} }, "addresses[1]: \"tcp://[0::01]:3310\" is listed twice"},
		{"duplicate socket path", func(c *Config) { c.Addresses = []string{"unix:///run/clamd.ctl", "unix:///run//./clamd.ctl"} }, "addresses[1]: \"unix:///run//./clamd.ctl\" is listed twice"},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, "timeout: must not be negative"},
		{"negative connect timeout", func(c *Config) { c.ConnectTimeout = -1 }, "connect_timeout: must not be negative"},
		{"negative max conns", func(c *Config) { c.MaxConns = -1 }, "max_connections: must not be negative"},
		{"missing signatures folder", func(c *Config) { c.SignaturesDir = "/nonexistent/sigs" }, "signatures: stat /nonexistent/sigs: no such file"},
		{"signatures not a folder", func(c *Config) { c.SignaturesDir = "/etc/hostname" }, "signatures: /etc/hostname is not a folder"},
		{"chunk too big", func(c *Config) { c.ChunkSize = MaxChunkSize + 1 }, "chunk_size: must be between"},
		{"negative chunk", func(c *Config) { c.ChunkSize = -1 }, "chunk_size: must be between"},
		{"negative reload interval", func(c *Config) { c.ReloadInterval = -1 }, "reload_interval: must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.modify(&cfg)
			_, err := New(cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "clamd: config: ") {
				t.Errorf("got error %v, want \"clamd: config: ...%s...\"", err, tc.want)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		e, err := New(good, nil)
		if err != nil {
			t.Fatal(err)
		}
		if e.cfg.Timeout != DefaultTimeout || e.cfg.MaxConns != DefaultMaxConns || e.cfg.ChunkSize != DefaultChunkSize {
			t.Errorf("got %+v, want the defaults", e.cfg)
		}
		if e.Name() != "clamav" || e.Type() != "clamd" {
			t.Errorf("got name %q type %q, want clamav clamd", e.Name(), e.Type())
		}
	})
	t.Run("distinct addresses", func(t *testing.T) {
		// Spellings that may reach different daemons are not refused as
		// duplicates: a relative name may go through the search domains,
		// ".." after a symbolic link leaves the folder it names.
		cfg := good
		cfg.Addresses = []string{"clamd:3310", "clamd.:3310", "clamd:3311", "unix:///run/a/../clamd.ctl", "unix:///run/clamd.ctl", "unix:///run/clamd.ctl/"}
		e, err := New(cfg, nil)
		if err != nil {
			t.Fatalf("got error %v, want none", err)
		}
		defer e.Close()
		if got := len(e.backends); got != len(cfg.Addresses) {
			t.Errorf("got %d backends, want %d", got, len(cfg.Addresses))
		}
	})
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{
		{0, 0}, {1, 500 * time.Millisecond}, {2, time.Second}, {3, 2 * time.Second},
		{6, 16 * time.Second}, {7, 30 * time.Second}, {20, 30 * time.Second}, {1000, 30 * time.Second},
	} {
		if got := backoff(tc.n); got != tc.want {
			t.Errorf("backoff(%d): got %v, want %v", tc.n, got, tc.want)
		}
	}
}
