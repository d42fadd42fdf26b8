package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadSandbox(t *testing.T) {
	cfg, err := Load("testdata/sandbox.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(cfg.Engines), 2; got != want {
		t.Fatalf("engines: got %d, want %d", got, want)
	}
	e := cfg.Engines[1]
	if e.Type != TypeSandbox || e.Isolation != IsolationBwrap || e.Workers != 2 || e.Timeout != 4*time.Minute {
		t.Errorf("got type %q, isolation %q, workers %d, timeout %v; want sandbox, bwrap, 2, 4m", e.Type, e.Isolation, e.Workers, e.Timeout)
	}
	if e.MaxSize != 50<<20 || e.Mountpoint != "/var/data" || e.InputFilename != "sample.apk" || e.User != "65534:65534" || !e.OnDemand {
		t.Errorf("got max_size %d, mountpoint %q, input_filename %q, user %q, on_demand %t", e.MaxSize, e.Mountpoint, e.InputFilename, e.User, e.OnDemand)
	}
	if l := e.Limits; l == nil || l.Memory != 3<<30 || l.CPUTime != 4*time.Minute || l.FileSize != 64<<20 || l.Processes != 32 || l.TmpSize != 512<<20 {
		t.Errorf("got limits %+v", l)
	}
	if r := e.Report; r == nil || r.MaxSize != 16<<20 || r.ContentType != "application/json" || r.Required == nil || *r.Required || r.SignatureField != "signature" {
		t.Errorf("got report %+v", r)
	}
	if e.Env["JAVA_OPTS"] != "-Xmx512m" || len(e.ROBinds) != 2 || e.Version != "apktool-2.9.3" {
		t.Errorf("got env %v, ro_binds %v, version %q", e.Env, e.ROBinds, e.Version)
	}
}

// TestSandboxBindsKeepOthersSamplesOut: ro_binds may not show an analyzer
// the data folder or the temporary folder, where other jobs' samples and
// reports are; a folder of its own below the temporary one is fine.
func TestSandboxBindsKeepOthersSamplesOut(t *testing.T) {
	tmp := filepath.Clean(os.TempDir())
	for _, tc := range []struct {
		bind string
		want string // "" for accepted
	}{
		{"/opt/analyzer", ""},
		{filepath.Join(tmp, "analyzer"), ""},
		{"/srv/lazaret", "data_dir"},
		{"/srv/lazaret/reports", "data_dir"},
		{"/srv", "data_dir"},
		{tmp, "temporary folder"},
		{filepath.Dir(tmp), "temporary folder"},
	} {
		t.Run(tc.bind, func(t *testing.T) {
			cfg := Default()
			cfg.DataDir = "/srv/lazaret"
			cfg.Engines = []Engine{{Name: "a", Type: TypeSandbox, Command: []string{"/opt/analyzer/run"}, ROBinds: []string{tc.bind}}}
			err := cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want it accepted", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), "ro_binds[0]") || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error on ro_binds[0] naming the %s", err, tc.want)
			}
		})
	}
}

func TestLoadSandboxErrors(t *testing.T) {
	for _, tc := range []struct {
		file string
		want string
	}{
		{"sandbox_no_command.yaml", "engines[0].command: a sandbox engine needs the analyzer's command"},
		{"sandbox_bad_isolation.yaml", `engines[0].isolation: "docker" is not one of bwrap, none`},
		{"sandbox_settings_on_command.yaml", "engines[0]: sandbox settings on a command engine"},
		{"sandbox_bad_input_filename.yaml", `engines[0].input_filename: "../sample.apk" is not a file name`},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := Load("testdata/"+tc.file, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
