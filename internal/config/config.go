// Package config reads lazaret's configuration: defaults, then a YAML file
// (unknown keys are errors), then LAZARET_* environment variables, then
// flags (applied by the caller), then validation with errors that name the
// field.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"
)

// Config is the whole configuration.
type Config struct {
	// Listen is the API's address.
	Listen string `yaml:"listen"`
	// DataDir holds the embedded store, queue and spool files.
	DataDir string `yaml:"data_dir"`
	Store   Store  `yaml:"store"`
	Queue   Queue  `yaml:"queue"`
	Auth    Auth   `yaml:"auth"`
	TLS     TLS    `yaml:"tls"`
	// Workers is how many queued jobs `serve` and `worker` scan at once.
	Workers int    `yaml:"workers"`
	Limits  Limits `yaml:"limits"`
	Log     Log    `yaml:"log"`
	// S3 is the object store that bucket scanning reads and acts on.
	S3 S3 `yaml:"s3"`
	// Buckets scopes bucket scanning; empty with S3 set means every
	// bucket whose events arrive.
	Buckets []Bucket `yaml:"buckets"`
	Effects Effects  `yaml:"effects"`
	Events  Events   `yaml:"events"`
	Notify  Notify   `yaml:"notify"`
	Rescan  Rescan   `yaml:"rescan"`
	// KeepUploads keeps uploaded samples (by SHA-256, in
	// DATA_DIR/uploads) so that rescans can read them again. Off, their
	// bytes are gone once scanned and rescans skip their jobs.
	KeepUploads bool `yaml:"keep_uploads"`
	// KeepUploadsFor removes a kept upload once its content has not
	// been uploaded again for this long; 0 keeps uploads forever.
	// `serve` and `worker` prune hourly, `rescan` before it starts.
	KeepUploadsFor time.Duration `yaml:"keep_uploads_for"`
	// KeepUploadsMaxSize caps the kept uploads' total size: past it,
	// the least recently uploaded go first. 0 means no cap.
	KeepUploadsMaxSize ByteSize `yaml:"keep_uploads_max_size"`
	// KeepReportsFor removes a sandbox engine's report (DATA_DIR/reports)
	// once no analyzer has written the same report for this long; 0
	// keeps reports forever. A job whose report is gone answers 410
	// report_gone for it. `serve` and `worker` prune hourly.
	KeepReportsFor time.Duration `yaml:"keep_reports_for"`
	// Proxies are store-scan-forward gates served by `serve` under
	// /proxy/<name>/.
	Proxies []Proxy `yaml:"proxies"`
	// Engines scan every sample. Empty means one builtin engine.
	Engines []Engine `yaml:"engines"`
	// DebugListen, if set, serves Go's runtime profiles (/debug/pprof/)
	// on this loopback address, apart from the API and without auth:
	// how an operator finds where a busy server spends its time.
	DebugListen string `yaml:"debug_listen"`
}

// Store selects the job and verdict store.
type Store struct {
	// URL is "sqlite:PATH" / a file path, or "postgres://...". Empty means
	// SQLite at DATA_DIR/lazaret.db.
	URL Secret `yaml:"url"`
}

// Queue selects the job queue.
type Queue struct {
	// URL names an external NATS server ("nats://host:4222"); empty
	// runs NATS JetStream embedded, with its files in DATA_DIR/queue.
	URL Secret `yaml:"url"`
	// Listen exposes the embedded NATS on a loopback address so that
	// `lazaret worker` processes on this host can share the queue.
	Listen string `yaml:"listen"`
	// AckWait is how long a worker may go silent before its job is
	// given to another; running jobs send heartbeats.
	AckWait time.Duration `yaml:"ack_wait"`
	// MaxDeliveries bounds attempts per job; the last one stores an
	// error verdict instead of retrying.
	MaxDeliveries int `yaml:"max_deliveries"`
}

// Auth configures API authentication.
type Auth struct {
	Tokens []Token `yaml:"tokens"`
}

// Token is one API bearer token.
type Token struct {
	Name string `yaml:"name"`
	// Role is read, submit or admin.
	Role string `yaml:"role"`
	// Token is the value, or TokenFile a file holding it.
	Token     Secret `yaml:"token"`
	TokenFile string `yaml:"token_file"`
}

// TLS configures HTTPS for the API.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// S3 configures the S3 / MinIO client.
type S3 struct {
	// Endpoint is "https://minio:9000" (or http://).
	Endpoint           string `yaml:"endpoint"`
	AccessKey          string `yaml:"access_key"`
	SecretKey          Secret `yaml:"secret_key"`
	Region             string `yaml:"region"`
	PathStyle          bool   `yaml:"path_style"`
	CAFile             string `yaml:"ca_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// Bucket scopes scanning in one bucket: keys and sizes outside the scope
// are recorded and skipped.
type Bucket struct {
	Name            string   `yaml:"name"`
	IncludePrefixes []string `yaml:"include_prefixes"`
	ExcludePrefixes []string `yaml:"exclude_prefixes"`
	IncludeSuffixes []string `yaml:"include_suffixes"`
	ExcludeSuffixes []string `yaml:"exclude_suffixes"`
	MinSize         ByteSize `yaml:"min_size"`
	MaxSize         ByteSize `yaml:"max_size"`
}

// Effects says what a bucket scan does to the object.
type Effects struct {
	// Tag writes the verdict tags (merged with the object's own).
	Tag bool `yaml:"tag"`
	// TagKey names the status tag: lazaret-status, or bucket-av-scanner's
	// "scanned" in its compatibility mode.
	TagKey string `yaml:"tag_key"`
	// TagPending tags objects "pending" as soon as their event arrives.
	TagPending bool `yaml:"tag_pending"`
	// OnInfected is delete, quarantine or tag.
	OnInfected       string `yaml:"on_infected"`
	QuarantineBucket string `yaml:"quarantine_bucket"`
	QuarantinePrefix string `yaml:"quarantine_prefix"`
}

// Events configures where S3 event notifications come from.
type Events struct {
	AMQP *AMQPEvents `yaml:"amqp"`
	NATS *NATSEvents `yaml:"nats"`
}

// AMQPEvents reads MinIO's AMQP target: a durable queue bound to an
// exchange.
type AMQPEvents struct {
	URL        Secret `yaml:"url"`
	Queue      string `yaml:"queue"`
	Exchange   string `yaml:"exchange"`
	RoutingKey string `yaml:"routing_key"`
	Prefetch   int    `yaml:"prefetch"`
}

// NATSEvents reads MinIO's NATS (JetStream) target.
type NATSEvents struct {
	URL     Secret `yaml:"url"`
	Stream  string `yaml:"stream"`
	Subject string `yaml:"subject"`
	// AckWait is how long an event handed to a process that died waits
	// before JetStream delivers it again; running scans send heartbeats.
	// 0 means 1 minute.
	AckWait time.Duration `yaml:"ack_wait"`
}

// Notify configures result notifications.
type Notify struct {
	Webhooks []Webhook `yaml:"webhooks"`
	// AMQP publishes every result to a topic exchange with routing key
	// lazaret.results.<verdict>.
	AMQP *AMQPNotify `yaml:"amqp"`
	// NATS publishes every result on subject <prefix>.<verdict>.
	NATS *NATSNotify `yaml:"nats"`
}

// AMQPNotify is a RabbitMQ exchange for results.
type AMQPNotify struct {
	URL      Secret `yaml:"url"`
	Exchange string `yaml:"exchange"` // default "lazaret"
}

// NATSNotify is a NATS server for results.
type NATSNotify struct {
	URL           Secret `yaml:"url"`
	SubjectPrefix string `yaml:"subject_prefix"` // default "lazaret.results"
}

// Webhook is one receiver of signed result notifications.
type Webhook struct {
	URL Secret `yaml:"url"`
	// Secret signs bodies: X-Lazaret-Signature: sha256=<hmac>.
	Secret Secret `yaml:"secret"`
	// ReportClean sends clean results too (bucket-av-scanner's
	// REPORT_CLEAN); results that are not clean are always sent.
	ReportClean        bool   `yaml:"report_clean"`
	CAFile             string `yaml:"ca_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// Proxy is a store-scan-forward gate in front of an upstream.
type Proxy struct {
	// Name is the path segment: /proxy/<name>/...
	Name     string `yaml:"name"`
	Upstream Secret `yaml:"upstream"`
	// PassThrough lists path prefixes (index pages such as /simple/)
	// served without a scan.
	PassThrough []string `yaml:"pass_through"`
	// Hosts are more upstreams that the upstream's pages link to (a
	// package index's file host), each served under its own path prefix.
	Hosts []ProxyHost `yaml:"hosts"`
	// RewriteLinks rewrites absolute links to the upstream and to Hosts
	// in HTML and JSON pages into links through the proxy.
	RewriteLinks bool `yaml:"rewrite_links"`
	// CacheMaxSize bounds the cached bodies' total size, least recently
	// used out first; unset means DefaultProxyCacheMaxSize, 0 no bound.
	CacheMaxSize *ByteSize `yaml:"cache_max_size"`
}

// ProxyHost is one more upstream of a proxy.
type ProxyHost struct {
	// Prefix is the local path prefix, "/name/": requests under it go
	// to Upstream.
	Prefix   string `yaml:"prefix"`
	Upstream Secret `yaml:"upstream"`
}

// DefaultProxyCacheMaxSize bounds a proxy's cache when cache_max_size is
// not set.
const DefaultProxyCacheMaxSize = 10 << 30

// Rescan schedules re-checks of stored verdicts inside serve.
type Rescan struct {
	// Schedule is a cron expression ("0 3 * * *", "@every 6h"); empty
	// means no scheduled rescans (`lazaret rescan` still works).
	Schedule string `yaml:"schedule"`
	// OlderThan also rescans verdicts older than this; 0 means only
	// those made with other engine versions.
	OlderThan time.Duration `yaml:"older_than"`
}

// Limits bounds what is read.
type Limits struct {
	// MaxSize is the largest sample scanned; larger ones are skipped
	// (too_large), never passed as clean.
	MaxSize ByteSize `yaml:"max_size"`
	// MemorySpool is the size up to which samples stay in memory.
	MemorySpool ByteSize `yaml:"memory_spool"`
	// EngineTimeout bounds one engine's scan of one sample.
	EngineTimeout time.Duration `yaml:"engine_timeout"`
	// MaxSignatureAge makes readiness fail when an engine's signatures
	// are older; 0 turns the check off.
	MaxSignatureAge time.Duration `yaml:"max_signature_age"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text, json
}

// Engine configures one engine; which fields apply depends on Type.
type Engine struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"` // clamd, builtin, command, sandbox
	// Timeout bounds one scan by this engine.
	Timeout time.Duration `yaml:"timeout"`

	// clamd: Address, or Addresses for several daemons.
	Address        string        `yaml:"address"`
	Addresses      []string      `yaml:"addresses"`
	MaxConnections int           `yaml:"max_connections"`
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// FDPass, on by default, passes samples held in memory to clamd on a
	// unix socket as file descriptors (zFILDES) instead of streaming
	// them; false streams everything.
	FDPass *bool `yaml:"fdpass"`

	// clamd and builtin: a folder of ClamAV signature files. For clamd
	// its digest joins the version, and clamd is told to RELOAD when it
	// changes.
	Signatures string `yaml:"signatures"`
	// ReloadInterval is how often the signature folder is checked.
	ReloadInterval time.Duration `yaml:"reload_interval"`

	// command
	Command        []string      `yaml:"command"`
	InfectedWhen   *InfectedWhen `yaml:"infected_when"`
	CleanExitCodes []int         `yaml:"clean_exit_codes"`
	Version        string        `yaml:"version"`
	VersionCommand []string      `yaml:"version_command"`
	MaxOutput      ByteSize      `yaml:"max_output"`
	// Stdin feeds the sample on standard input instead of (or as well
	// as) {path}.
	Stdin bool `yaml:"stdin"`
	// Env adds variables to the command's minimal environment.
	Env map[string]string `yaml:"env"`
	// Dir is the command's working folder.
	Dir string `yaml:"dir"`

	// sandbox: Command (the analyzer's argv), Env, Version and Timeout
	// as above, and these. See docs/CONFIG.md, "Sandbox engines".
	//
	// Isolation is bwrap (the default: bubblewrap namespaces) or none
	// (rlimits and a process group only, for development).
	Isolation string `yaml:"isolation"`
	// Workers bounds the analyzer runs of this engine at once
	// (menagerie's workers); more samples wait their turn.
	Workers int `yaml:"workers"`
	// MaxSize skips larger samples as too_large without running the
	// analyzer (menagerie's sizelimit); 0 leaves limits.max_size alone.
	MaxSize ByteSize `yaml:"max_size"`
	// Mountpoint is the folder inside the sandbox that holds the sample
	// (menagerie's mountpoint), InputFilename its name there
	// (menagerie's inputfilename).
	Mountpoint    string `yaml:"mountpoint"`
	InputFilename string `yaml:"input_filename"`
	// User is the user the analyzer runs as on the host, "UID[:GID]" or
	// a name (menagerie's user); when lazaret runs as root the default
	// is 65534 (nobody).
	User string `yaml:"user"`
	// ROBinds are host files and folders the analyzer sees read-only at
	// the same path, besides the system folders.
	ROBinds []string `yaml:"ro_binds"`
	// OnDemand leaves the engine out of jobs that name no engine: it
	// runs only for POST /{engine}/upload.
	OnDemand bool `yaml:"on_demand"`
	// Limits bound each analyzer run.
	Limits *SandboxLimits `yaml:"limits"`
	// Report says where the report comes from and how it is kept.
	Report *SandboxReport `yaml:"report"`
}

// SandboxLimits bound one analyzer run (sandbox engines). Zero fields
// take the engine's defaults.
type SandboxLimits struct {
	// Memory is the address space limit (RLIMIT_AS).
	Memory ByteSize `yaml:"memory"`
	// CPUTime is the CPU time limit per process (RLIMIT_CPU).
	CPUTime time.Duration `yaml:"cpu_time"`
	// FileSize is the largest file the analyzer may write (RLIMIT_FSIZE).
	FileSize ByteSize `yaml:"file_size"`
	// Processes bounds the processes of the analyzer's user (RLIMIT_NPROC).
	Processes int `yaml:"processes"`
	// TmpSize is the size of the analyzer's /tmp (a tmpfs, in memory).
	TmpSize ByteSize `yaml:"tmp_size"`
}

// SandboxReport says how a sandbox engine's report is read and kept.
type SandboxReport struct {
	// MaxSize bounds the report; a larger one makes the scan an error.
	MaxSize ByteSize `yaml:"max_size"`
	// ContentType is served with the report; empty means sniffed.
	ContentType string `yaml:"content_type"`
	// Required makes a run that wrote no report an error (default true).
	Required *bool `yaml:"required"`
	// SignatureField names a field of a JSON report whose string (or
	// strings) name the findings of an infected sample.
	SignatureField string `yaml:"signature_field"`
}

// InfectedWhen says how a command engine reports an infection.
type InfectedWhen struct {
	ExitCodes     []int  `yaml:"exit_codes"`
	OutputMatches string `yaml:"output_matches"`
}

// Engine types.
const (
	TypeClamd   = "clamd"
	TypeBuiltin = "builtin"
	TypeCommand = "command"
	TypeSandbox = "sandbox"
)

// Default returns the embedded defaults: everything local, the builtin
// engine.
func Default() Config {
	return Config{
		Listen:  "127.0.0.1:8080",
		DataDir: "./lazaret-data",
		Limits: Limits{
			MaxSize:       2 << 30,
			MemorySpool:   1 << 20,
			EngineTimeout: 5 * time.Minute,
		},
		Log:     Log{Level: "info", Format: "text"},
		Effects: Effects{Tag: true, TagKey: "lazaret-status", OnInfected: "delete"},
		S3:      S3{PathStyle: true},
		Workers: 4,
		Queue:   Queue{AckWait: 30 * time.Second, MaxDeliveries: 5},
		// 30 days: long enough for several signature updates to
		// rescan an upload, short enough that the folder stops growing.
		KeepUploadsFor: 30 * 24 * time.Hour,
		// 90 days: a report is the evidence behind a verdict, looked
		// at after an incident rather than within the hour.
		KeepReportsFor: 90 * 24 * time.Hour,
	}
}

// DefaultEngines is used when the configuration names none.
func DefaultEngines() []Engine {
	return []Engine{{Name: "builtin", Type: TypeBuiltin}}
}

// Load reads defaults, then the YAML file at path (if path is not ""),
// then the environment (getenv, usually os.Getenv). It validates the
// result.
func Load(path string, getenv func(string) string) (Config, error) {
	cfg := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		if err := decode(bytes.NewReader(b), &cfg); err != nil {
			return cfg, fmt.Errorf("config: %s: %w", path, err)
		}
	}
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if err := applyBucketAVScanner(&cfg, getenv); err != nil {
		return cfg, err
	}
	if err := applyEnv(&cfg, getenv); err != nil {
		return cfg, err
	}
	if len(cfg.Engines) == 0 {
		cfg.Engines = DefaultEngines()
	}
	return cfg, cfg.Validate()
}

// decode decodes one YAML document strictly: unknown keys are errors.
func decode(r io.Reader, cfg *Config) error {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file is the defaults
		}
		return err
	}
	return nil
}

// applyEnv applies LAZARET_* variables.
func applyEnv(cfg *Config, getenv func(string) string) error {
	str := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	str("LAZARET_LISTEN", &cfg.Listen)
	str("LAZARET_DATA_DIR", &cfg.DataDir)
	str("LAZARET_LOG_LEVEL", &cfg.Log.Level)
	str("LAZARET_LOG_FORMAT", &cfg.Log.Format)
	str("LAZARET_DEBUG_LISTEN", &cfg.DebugListen)
	if v := getenv("LAZARET_STORE_URL"); v != "" {
		cfg.Store.URL = Secret(v)
	}
	if v := getenv("LAZARET_QUEUE_URL"); v != "" {
		cfg.Queue.URL = Secret(v)
	}
	// LAZARET_TOKEN adds one admin token: enough for a single-user
	// server without a config file.
	if v := getenv("LAZARET_TOKEN"); v != "" {
		cfg.Auth.Tokens = append(cfg.Auth.Tokens, Token{Name: "env", Role: "admin", Token: Secret(v)})
	}
	if v := getenv("LAZARET_WORKERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("config: LAZARET_WORKERS: %q is not a number", v)
		}
		cfg.Workers = n
	}
	if v := getenv("LAZARET_MAX_SIZE"); v != "" {
		n, err := ParseByteSize(v)
		if err != nil {
			return fmt.Errorf("config: LAZARET_MAX_SIZE: %w", err)
		}
		cfg.Limits.MaxSize = ByteSize(n)
	}
	// LAZARET_CLAMD adds a clamd engine named "clamav": the quickest way
	// to point a default setup at a daemon.
	if v := getenv("LAZARET_CLAMD"); v != "" {
		addrs := strings.Split(v, ",")
		cfg.Engines = append(cfg.Engines, Engine{Name: "clamav", Type: TypeClamd, Addresses: addrs})
	}
	return nil
}

// Validate checks the configuration and names the first wrong field.
func (c *Config) Validate() error {
	var errs []error
	if c.Limits.MaxSize < 0 {
		errs = append(errs, errors.New("limits.max_size: must not be negative"))
	}
	if c.Limits.MemorySpool < 0 {
		errs = append(errs, errors.New("limits.memory_spool: must not be negative"))
	}
	if c.Limits.EngineTimeout < 0 {
		errs = append(errs, errors.New("limits.engine_timeout: must not be negative"))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q is not one of debug, info, warn, error", c.Log.Level))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format: %q is not one of text, json", c.Log.Format))
	}
	if c.KeepUploadsFor < 0 {
		errs = append(errs, errors.New("keep_uploads_for: must not be negative (0 keeps uploads forever)"))
	}
	if c.KeepReportsFor < 0 {
		errs = append(errs, errors.New("keep_reports_for: must not be negative (0 keeps reports forever)"))
	}
	if c.Workers < 1 {
		errs = append(errs, errors.New("workers: must be at least 1"))
	}
	if c.Queue.AckWait < time.Second {
		errs = append(errs, errors.New("queue.ack_wait: must be at least 1s"))
	}
	if c.Events.NATS != nil && c.Events.NATS.AckWait < 0 {
		errs = append(errs, errors.New("events.nats.ack_wait: must not be negative"))
	}
	if c.Queue.MaxDeliveries < 1 {
		errs = append(errs, errors.New("queue.max_deliveries: must be at least 1"))
	}
	if c.DebugListen != "" && !IsLoopback(c.DebugListen) {
		errs = append(errs, fmt.Errorf("debug_listen: %q is not a loopback address; profiles are never served beyond this host", c.DebugListen))
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("tls: cert_file and key_file go together"))
	}
	switch c.Effects.OnInfected {
	case "delete", "tag":
	case "quarantine":
		if c.Effects.QuarantineBucket == "" {
			errs = append(errs, errors.New("effects.quarantine_bucket: required with on_infected: quarantine"))
		}
	default:
		errs = append(errs, fmt.Errorf("effects.on_infected: %q is not one of delete, quarantine, tag", c.Effects.OnInfected))
	}
	if c.Effects.TagKey == "" {
		errs = append(errs, errors.New("effects.tag_key: required"))
	}
	if len(c.Buckets) > 0 && c.S3.Endpoint == "" {
		errs = append(errs, errors.New("s3.endpoint: required when buckets are configured"))
	}
	for i, b := range c.Buckets {
		if b.Name == "" {
			errs = append(errs, fmt.Errorf("buckets[%d].name: required", i))
		}
		if b.MaxSize > 0 && b.MinSize > b.MaxSize {
			errs = append(errs, fmt.Errorf("buckets[%d].min_size: larger than max_size", i))
		}
	}
	for i, w := range c.Notify.Webhooks {
		u := w.URL.Reveal()
		if !isHTTPURL(u) {
			errs = append(errs, fmt.Errorf("notify.webhooks[%d].url: want an http(s) URL", i))
		}
	}
	proxyNames := map[string]bool{}
	for i, p := range c.Proxies {
		switch {
		case p.Name == "" || strings.ContainsAny(p.Name, "/ ?#%"):
			errs = append(errs, fmt.Errorf("proxies[%d].name: required, one path segment", i))
		case proxyNames[p.Name]:
			errs = append(errs, fmt.Errorf("proxies[%d].name: %q is used twice", i, p.Name))
		}
		proxyNames[p.Name] = true
		if !isHTTPURL(p.Upstream.Reveal()) {
			errs = append(errs, fmt.Errorf("proxies[%d].upstream: want an http(s) URL", i))
		}
		for j, h := range p.Hosts {
			if len(h.Prefix) < 3 || !strings.HasPrefix(h.Prefix, "/") || !strings.HasSuffix(h.Prefix, "/") {
				errs = append(errs, fmt.Errorf("proxies[%d].hosts[%d].prefix: want a path prefix such as /files/", i, j))
			}
			if !isHTTPURL(h.Upstream.Reveal()) {
				errs = append(errs, fmt.Errorf("proxies[%d].hosts[%d].upstream: want an http(s) URL", i, j))
			}
		}
	}
	if c.Rescan.Schedule != "" {
		if _, err := cron.ParseStandard(c.Rescan.Schedule); err != nil {
			errs = append(errs, fmt.Errorf("rescan.schedule: %w", err))
		}
	}
	tokenNames := map[string]bool{}
	for i, t := range c.Auth.Tokens {
		field := fmt.Sprintf("auth.tokens[%d]", i)
		if t.Name == "" {
			errs = append(errs, fmt.Errorf("%s.name: required", field))
		} else if tokenNames[t.Name] {
			errs = append(errs, fmt.Errorf("%s.name: %q is used twice", field, t.Name))
		}
		tokenNames[t.Name] = true
		switch t.Role {
		case "read", "submit", "admin":
		default:
			errs = append(errs, fmt.Errorf("%s.role: %q is not one of read, submit, admin", field, t.Role))
		}
		if (t.Token == "") == (t.TokenFile == "") {
			errs = append(errs, fmt.Errorf("%s.token: give token or token_file", field))
		}
	}
	names := map[string]bool{}
	for i, e := range c.Engines {
		field := fmt.Sprintf("engines[%d]", i)
		if e.Name == "" {
			errs = append(errs, fmt.Errorf("%s.name: required", field))
		} else if names[e.Name] {
			errs = append(errs, fmt.Errorf("%s.name: %q is used twice", field, e.Name))
		}
		names[e.Name] = true
		if e.Timeout < 0 {
			errs = append(errs, fmt.Errorf("%s.timeout: must not be negative", field))
		}
		switch e.Type {
		case TypeClamd:
			if e.Address == "" && len(e.Addresses) == 0 {
				errs = append(errs, fmt.Errorf("%s.address: a clamd engine needs address or addresses", field))
			}
			if e.Address != "" && len(e.Addresses) > 0 {
				errs = append(errs, fmt.Errorf("%s.address: give address or addresses, not both", field))
			}
		case TypeBuiltin:
		case TypeCommand:
			if len(e.Command) == 0 {
				errs = append(errs, fmt.Errorf("%s.command: a command engine needs a command", field))
			}
		case TypeSandbox:
			errs = append(errs, validateSandbox(field, e, c.DataDir)...)
		case "":
			errs = append(errs, fmt.Errorf("%s.type: required (clamd, builtin, command, sandbox)", field))
		default:
			errs = append(errs, fmt.Errorf("%s.type: unknown engine type %q (clamd, builtin, command, sandbox)", field, e.Type))
		}
		if e.Type != TypeCommand && (e.InfectedWhen != nil || len(e.CleanExitCodes) > 0 || len(e.VersionCommand) > 0 || e.MaxOutput != 0 || e.Stdin || e.Dir != "") {
			errs = append(errs, fmt.Errorf("%s: command settings on a %s engine", field, e.Type))
		}
		if e.Type != TypeCommand && e.Type != TypeSandbox && (len(e.Command) > 0 || len(e.Env) > 0) {
			errs = append(errs, fmt.Errorf("%s.command: only command and sandbox engines run a command", field))
		}
		if e.Type != TypeSandbox && (e.Isolation != "" || e.Workers != 0 || e.MaxSize != 0 || e.Mountpoint != "" ||
			e.InputFilename != "" || e.User != "" || len(e.ROBinds) > 0 || e.OnDemand || e.Limits != nil || e.Report != nil) {
			errs = append(errs, fmt.Errorf("%s: sandbox settings on a %s engine", field, e.Type))
		}
		if e.Type != TypeClamd && (e.Address != "" || len(e.Addresses) > 0 || e.MaxConnections != 0) {
			errs = append(errs, fmt.Errorf("%s.address: only clamd engines have addresses", field))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return nil
}

// StorePath returns the SQLite file for an embedded store.
func (c *Config) StorePath() string { return filepath.Join(c.DataDir, "lazaret.db") }

// Secret is a string that prints as <secret> so that it is never logged.
type Secret string

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "<secret>"
}

// MarshalYAML hides the value.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// Reveal returns the value, for the one place that uses it.
func (s Secret) Reveal() string { return string(s) }

// ByteSize is a size in bytes that YAML may write as 1048576, "1MiB",
// "200M" or "2GB" (K/M/G/T are powers of 1024, as ClamAV reads them).
type ByteSize int64

// UnmarshalYAML parses a size.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = ByteSize(v)
	return nil
}

// isHTTPURL reports whether u names an http or https resource.
func isHTTPURL(u string) bool {
	return strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://")
}

// ParseByteSize parses "123", "64K", "200MiB", "2GB", "1T".
func ParseByteSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	mult, ok := sizeUnits[strings.ToUpper(strings.TrimSpace(t[i:]))]
	if i == 0 || !ok {
		return 0, fmt.Errorf("size %q: want a number of bytes like 1048576, 64K, 200MiB or 2G", s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return n * mult, nil
}

// sizeUnits are the units ParseByteSize takes, in upper case: powers of
// 1024 whichever way they are written.
var sizeUnits = map[string]int64{
	"": 1, "B": 1,
	"K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10,
	"M": 1 << 20, "MB": 1 << 20, "MIB": 1 << 20,
	"G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30,
	"T": 1 << 40, "TB": 1 << 40, "TIB": 1 << 40,
}

// TokenValue returns the token's value, reading TokenFile if set.
func (t Token) TokenValue() (string, error) {
	if t.TokenFile == "" {
		return t.Token.Reveal(), nil
	}
	b, err := os.ReadFile(t.TokenFile)
	if err != nil {
		return "", fmt.Errorf("config: token %s: %w", t.Name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// IsLoopback reports whether a listen address binds only loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
