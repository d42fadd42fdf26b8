package clamd

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// Defaults for the zero fields of Config.
const (
	DefaultTimeout        = 2 * time.Minute
	DefaultConnectTimeout = 5 * time.Second
	DefaultMaxConns       = 10 // clamd's default MaxThreads
	DefaultChunkSize      = 64 << 10
	DefaultIdleTimeout    = 30 * time.Second
	DefaultReloadInterval = 5 * time.Second
	DefaultReloadSettle   = 2 * time.Second

	// MaxChunkSize bounds ChunkSize: every scan in flight holds one
	// chunk buffer.
	MaxChunkSize = 16 << 20
)

// Config configures an Engine. Zero durations and sizes take the defaults
// above.
type Config struct {
	// Name is the configured engine name ("clamav"); required.
	Name string
	// Addresses are the clamd daemons: "tcp://host:port",
	// "unix:///path/clamd.sock" or a bare "host:port". At least one.
	Addresses []string
	// Timeout bounds one scan, from the first dial to the reply.
	Timeout time.Duration
	// ConnectTimeout bounds one dial; an address that does not answer
	// within it is failed over and backed off.
	ConnectTimeout time.Duration
	// MaxConns is the most connections open to each address at once;
	// further scans wait for one (or go to a less loaded address).
	MaxConns int
	// ChunkSize is the size of INSTREAM chunks, and of the buffer each
	// scan in flight holds.
	ChunkSize int
	// IdleTimeout is how long a connection may sit unused in the pool
	// before it is closed instead of reused. Keep it below clamd's
	// ReadTimeout (120 s by default), after which clamd closes idle
	// sessions. Negative disables reuse: one connection per scan.
	IdleTimeout time.Duration
	// NoFDPass turns off zFILDES. By default a sample held in memory is
	// passed to clamd on a unix socket as a file descriptor (an
	// anonymous in-memory file) instead of being streamed: clamd then
	// scans it in place, with no copy through the socket and no
	// temporary file of its own. Samples spooled to disk, and every
	// sample on a TCP address, are streamed with zINSTREAM.
	NoFDPass bool

	// SignaturesDir, if set, is the folder clamd loads its signatures
	// from (its DatabaseDirectory, or a copy of it). A digest of its
	// signature files joins the version, and clamd is sent RELOAD when
	// it changes. Optional.
	SignaturesDir string
	// ReloadInterval is how often SignaturesDir is checked for changes.
	ReloadInterval time.Duration
	// ReloadSettle is how long after a RELOAD the new digest starts to
	// be reported. clamd acknowledges RELOAD at once and loads in the
	// background, and says nothing when it is done; reporting the new
	// version too early would cache verdicts made with the old
	// signatures under the new version.
	ReloadSettle time.Duration
}

// withDefaults returns cfg with zero fields set to the defaults.
func (cfg Config) withDefaults() Config {
	set := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	set(&cfg.Timeout, DefaultTimeout)
	set(&cfg.ConnectTimeout, DefaultConnectTimeout)
	set(&cfg.IdleTimeout, DefaultIdleTimeout)
	set(&cfg.ReloadInterval, DefaultReloadInterval)
	set(&cfg.ReloadSettle, DefaultReloadSettle)
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	return cfg
}

// validate checks a defaulted Config and returns the parsed addresses, or
// every problem found, each naming its field as lazaret's configuration
// file spells it.
func (cfg Config) validate() ([]address, error) {
	var errs []error
	if cfg.Name == "" {
		errs = append(errs, errors.New("name: required"))
	}
	if len(cfg.Addresses) == 0 {
		errs = append(errs, errors.New("addresses: at least one clamd address is required"))
	}
	var addrs []address
	// seen maps each canonical address to where it was first listed, so
	// that "h:80" after "tcp://h:080" is refused as the same daemon.
	seen := map[string]int{}
	for i, s := range cfg.Addresses {
		a, err := parseAddress(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("addresses[%d]: %w", i, err))
			continue
		}
		key := a.canonical()
		if j, ok := seen[key]; ok {
			errs = append(errs, fmt.Errorf("addresses[%d]: %q is listed twice: addresses[%d] %q is the same address", i, s, j, cfg.Addresses[j]))
			continue
		}
		seen[key] = i
		addrs = append(addrs, a)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"timeout", cfg.Timeout},
		{"connect_timeout", cfg.ConnectTimeout},
		{"reload_interval", cfg.ReloadInterval},
		{"reload_settle", cfg.ReloadSettle},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: must not be negative, got %v", d.field, d.v))
		}
	}
	if cfg.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("max_connections: must not be negative, got %d", cfg.MaxConns))
	}
	if cfg.SignaturesDir != "" {
		if fi, err := os.Stat(cfg.SignaturesDir); err != nil {
			errs = append(errs, fmt.Errorf("signatures: %w", err))
		} else if !fi.IsDir() {
			errs = append(errs, fmt.Errorf("signatures: %s is not a folder", cfg.SignaturesDir))
		}
	}
	if cfg.ChunkSize < 0 || cfg.ChunkSize > MaxChunkSize {
		errs = append(errs, fmt.Errorf("chunk_size: must be between 1 and %d bytes, got %d", MaxChunkSize, cfg.ChunkSize))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("clamd: config: %w", err)
	}
	return addrs, nil
}
