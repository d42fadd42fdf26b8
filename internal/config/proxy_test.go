package config

import (
	"strings"
	"testing"
)

func TestLoadProxies(t *testing.T) {
	cfg, err := Load("testdata/proxies.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Proxies) != 3 {
		t.Fatalf("got %d proxies, want 3", len(cfg.Proxies))
	}
	p := cfg.Proxies[0]
	if !p.RewriteLinks || len(p.Hosts) != 1 || p.Hosts[0].Prefix != "/files/" ||
		p.Hosts[0].Upstream.Reveal() != "https://files.pythonhosted.org/" {
		t.Errorf("pypi: got rewrite_links %t, hosts %+v", p.RewriteLinks, p.Hosts)
	}
	for i, want := range []*ByteSize{ptr(ByteSize(20 << 30)), ptr(ByteSize(0)), nil} {
		got := cfg.Proxies[i].CacheMaxSize
		if (got == nil) != (want == nil) || (got != nil && *got != *want) {
			t.Errorf("proxies[%d].cache_max_size: got %v, want %v", i, got, want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestLoadProxyErrors(t *testing.T) {
	_, err := Load("testdata/proxy_bad_host.yaml", nil)
	for _, want := range []string{"proxies[0].hosts[0].prefix", "proxies[0].hosts[0].upstream"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want an error naming %s", err, want)
		}
	}
}
