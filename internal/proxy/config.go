package proxy

import "github.com/lazaret/lazaret/internal/config"

// FromConfig returns the Config for a proxy of the configuration file
// (`proxies:`): its name, upstreams, pass-through prefixes (served
// without a scan), link rewriting and cache bound. The caller adds what
// the file does not say: CacheDir, Scanner, MaxSize, Metrics, Logger.
func FromConfig(pc config.Proxy) Config {
	c := Config{Name: pc.Name, Upstream: pc.Upstream.Reveal(), RewriteLinks: pc.RewriteLinks}
	for _, prefix := range pc.PassThrough {
		c.PassThrough = append(c.PassThrough, Rule{PathPrefix: prefix, Scan: false})
	}
	for _, h := range pc.Hosts {
		c.Hosts = append(c.Hosts, Host{Prefix: h.Prefix, Upstream: h.Upstream.Reveal()})
	}
	switch {
	case pc.CacheMaxSize == nil:
		c.CacheMaxSize = config.DefaultProxyCacheMaxSize
	case *pc.CacheMaxSize == 0:
		c.CacheMaxSize = -1 // no bound
	default:
		c.CacheMaxSize = int64(*pc.CacheMaxSize)
	}
	return c
}
