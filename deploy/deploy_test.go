// Package deploy holds the deployment files (Dockerfile, compose). No
// Docker engine runs where the tests run, so this test checks what can be
// checked without one: the compose file parses, every long-running
// service has a health check and a restart policy, every variable it uses
// is in .env.example, and every script it mounts exists.
package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type service struct {
	Image       string            `yaml:"image"`
	Build       map[string]string `yaml:"build"`
	Restart     string            `yaml:"restart"`
	Healthcheck map[string]any    `yaml:"healthcheck"`
	Environment map[string]string `yaml:"environment"`
	Entrypoint  []string          `yaml:"entrypoint"`
}

func TestCompose(t *testing.T) {
	raw, err := os.ReadFile("compose/docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]service `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("compose file does not parse: %v", err)
	}
	for _, want := range []string{"minio-service", "minio-service-init", "mq-service", "mq-service-init", "clamd-service", "lazaret", "openssl-init"} {
		if _, ok := doc.Services[want]; !ok {
			t.Errorf("service %s missing", want)
		}
	}
	for name, s := range doc.Services {
		if s.Image == "" && s.Build == nil {
			t.Errorf("%s: no image or build", name)
		}
		if s.Restart == "no" {
			continue // an init service
		}
		if s.Healthcheck == nil {
			t.Errorf("%s: long-running service without a health check", name)
		}
		if s.Restart != "unless-stopped" {
			t.Errorf("%s: restart %q", name, s.Restart)
		}
	}
	env, err := os.ReadFile("compose/.env.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\$\{([A-Z_]+)\}`).FindAllStringSubmatch(string(raw), -1) {
		if !strings.Contains(string(env), "\n"+m[1]+"=") && !strings.HasPrefix(string(env), m[1]+"=") {
			t.Errorf("${%s} is used but not in .env.example", m[1])
		}
	}
	for _, m := range regexp.MustCompile(`/scripts/([a-z-]+\.sh)`).FindAllStringSubmatch(string(raw), -1) {
		if _, err := os.Stat(filepath.Join("compose", "scripts", m[1])); err != nil {
			t.Errorf("script %s: %v", m[1], err)
		}
	}
	// The scanner runs with the regular users only.
	lz := doc.Services["lazaret"].Environment
	for k := range lz {
		if strings.Contains(k, "ROOT") || strings.Contains(k, "DEFAULT_USER") {
			t.Errorf("lazaret gets the admin credential %s", k)
		}
	}
}

// The image holds lazaret-operator beside its entry point, lazaret, where
// `lazaret operator` looks first: the operator's Deployment and its scan
// Jobs (deploy/operator) run `lazaret operator ...` through that entry
// point.
func TestDockerfileOperator(t *testing.T) {
	raw, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var built, copied bool
	entry := ""
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case f[0] == "RUN" && strings.Contains(line, "go build") && strings.Contains(line, "./cmd/lazaret-operator"):
			built = true
		case f[0] == "COPY" && strings.Contains(line, "/lazaret-operator"):
			dst := f[len(f)-1]
			copied = dst == "/" || dst == "/lazaret-operator"
		case f[0] == "ENTRYPOINT":
			entry = strings.Trim(strings.TrimPrefix(line, "ENTRYPOINT"), ` []"`)
		}
	}
	if !built || !copied || entry != "/lazaret" {
		t.Errorf("Dockerfile: lazaret-operator built %v, copied to / %v, entry point %q; want both, beside /lazaret", built, copied, entry)
	}
}
