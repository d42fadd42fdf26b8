// Package operatorcli is the command line of lazaret-operator, lazaret's
// Kubernetes operator: the controller for KubeAV's VirusScan and
// ScheduledVirusScan resources (run, the default) and the agent that runs
// inside each scan Job (agent). It is a program of its own so that the
// Kubernetes packages, their size and their start-up cost stay out of the
// lazaret binary; `lazaret operator ARGS...` replaces itself with
// `lazaret-operator ARGS...`. The agent scans with package cli's own
// `lazaret scan`, in-process. Nothing in it calls os.Exit; Run returns the
// exit code, so tests run commands in-process.
package operatorcli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lazaret/lazaret/internal/cli"
	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/operator"
)

// root is lazaret-operator's command line: the controller by default, and
// the agent that runs inside each scan Job.
type root struct {
	Config string   `help:"Configuration file (YAML), for the log settings and the agent's scans. Also LAZARET_CONFIG." type:"path" placeholder:"FILE"`
	Run    runCmd   `cmd:"" default:"withargs" help:"Run the controller for VirusScan and ScheduledVirusScan resources (the default; its flags: lazaret-operator run --help)."`
	Agent  agentCmd `cmd:"" help:"Scan one VirusScan's volumes and report into its status (runs inside the scan Job)."`
}

// Run runs lazaret-operator's command line args (without the program name)
// and returns the exit code: cli.ExitClean, or cli.ExitError.
func Run(ctx context.Context, args []string, env cli.Env) (code int) {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	var r root
	kctx, code, exited, err := cli.Parse(&r, cli.OperatorProgram,
		"lazaret's Kubernetes operator, also run as `lazaret operator`: serves KubeAV's VirusScan and ScheduledVirusScan resources with scan Jobs.",
		args, env)
	if exited {
		return code
	}
	if err != nil {
		return errorf(env, err)
	}
	if r.Config == "" {
		r.Config = env.Getenv("LAZARET_CONFIG")
	}
	switch kctx.Command() {
	case "agent":
		return r.Agent.run(ctx, r.Config, env)
	default: // run, named or not
		return r.Run.run(ctx, r.Config, env)
	}
}

type runCmd struct {
	Kubeconfig        string        `type:"path" placeholder:"FILE" help:"Kubeconfig (default: $KUBECONFIG, then in-cluster, then ~/.kube/config)."`
	Namespace         string        `placeholder:"NS" help:"Watch only this namespace (default: all)."`
	Image             string        `placeholder:"IMAGE" help:"lazaret image the scan Jobs run (also LAZARET_OPERATOR_IMAGE; default ghcr.io/lazaret/lazaret:latest)."`
	ImagePullPolicy   string        `name:"image-pull-policy" enum:",Always,IfNotPresent,Never" default:"" help:"Pull policy of the scan Jobs."`
	Server            string        `placeholder:"URL" help:"lazaret server the scan Jobs send files to (also LAZARET_SERVER); without it they scan with the image's own engines."`
	ServerTokenSecret string        `name:"server-token-secret" placeholder:"SECRET" help:"Secret in each VirusScan's namespace whose 'token' key is the server's API token."`
	ServiceAccount    string        `name:"service-account" placeholder:"NAME" help:"One service account for the scan Jobs of every VirusScan naming none, created with its role binding; it may report for any VirusScan of its namespace (default: an account per scan that may report only for its own)."`
	AgentRole         string        `name:"agent-role" placeholder:"CLUSTERROLE" help:"ClusterRole bound to the --service-account (default lazaret-agent)."`
	ActiveDeadline    time.Duration `name:"active-deadline" placeholder:"DUR" default:"24h" help:"Bound on a scan Job's run time; a Job past it is stopped and its VirusScan fails with reason DeadlineExceeded (default ${default}; 0: no bound)."`
	LeaderElect       bool          `name:"leader-elect" help:"Elect a leader among replicas."`
	LeaderNamespace   string        `name:"leader-election-namespace" placeholder:"NS" help:"Namespace of the leader lease (default: the pod's)."`
	MetricsListen     string        `name:"metrics-listen" placeholder:"ADDR" help:"Serve Prometheus metrics here (default: off)."`
	HealthListen      string        `name:"health-listen" placeholder:"ADDR" help:"Serve /healthz and /readyz here (default: off)."`
}

func (c *runCmd) run(ctx context.Context, configPath string, env cli.Env) int {
	cfg, err := config.Load(configPath, env.Getenv)
	if err != nil {
		return errorf(env, err)
	}
	opts, err := c.options(env)
	if err != nil {
		return errorf(env, err)
	}
	rc, err := kubeConfig(c.Kubeconfig, env)
	if err != nil {
		return errorf(env, err)
	}
	opts.Logger = cli.NewLogger(cfg, env.Stderr)
	operator.SetProcessLoggers(opts.Logger)
	if err := operator.Run(ctx, rc, opts); err != nil {
		return errorf(env, err)
	}
	return cli.ExitClean
}

// options are the operator's options from the flags, without the logger.
func (c *runCmd) options(env cli.Env) (operator.Options, error) {
	deadline := c.ActiveDeadline
	switch {
	case deadline < 0:
		return operator.Options{}, fmt.Errorf("operator: --active-deadline %s: want a positive duration, or 0 for no bound", deadline)
	case deadline == 0:
		deadline = -1 // no bound: Options' 0 is the default
	}
	return operator.Options{
		Namespace:               c.Namespace,
		Image:                   cmp.Or(c.Image, env.Getenv("LAZARET_OPERATOR_IMAGE")),
		ImagePullPolicy:         corev1.PullPolicy(c.ImagePullPolicy),
		Server:                  cmp.Or(c.Server, env.Getenv("LAZARET_SERVER")),
		ServerTokenSecret:       c.ServerTokenSecret,
		ServiceAccount:          c.ServiceAccount,
		AgentRole:               c.AgentRole,
		ActiveDeadline:          deadline,
		LeaderElection:          c.LeaderElect,
		LeaderElectionNamespace: c.LeaderNamespace,
		MetricsAddr:             c.MetricsListen,
		HealthAddr:              c.HealthListen,
	}, nil
}

type agentCmd struct {
	Kubeconfig string `type:"path" placeholder:"FILE" help:"Kubeconfig (default: in-cluster)."`
	VirusScan  string `name:"virusscan" required:"" placeholder:"NAMESPACE/NAME" help:"The VirusScan to run."`
	Job        string `placeholder:"NAME" help:"The Job this runs in, recorded in the report."`
	Generation int64  `placeholder:"N" help:"The VirusScan's metadata.generation the Job was made from; another is refused (default: no check)."`
}

func (c *agentCmd) run(ctx context.Context, configPath string, env cli.Env) int {
	cfg, err := config.Load(configPath, env.Getenv)
	if err != nil {
		return errorf(env, err)
	}
	ns, name, ok := strings.Cut(c.VirusScan, "/")
	if !ok || ns == "" || name == "" {
		return errorf(env, fmt.Errorf("operator agent: --virusscan %q: want NAMESPACE/NAME", c.VirusScan))
	}
	rc, err := kubeConfig(c.Kubeconfig, env)
	if err != nil {
		return errorf(env, err)
	}
	scheme, err := operator.NewScheme()
	if err != nil {
		return errorf(env, err)
	}
	kc, err := client.New(rc, client.Options{Scheme: scheme})
	if err != nil {
		return errorf(env, fmt.Errorf("operator agent: client: %w", err))
	}
	// The scan is `lazaret scan` itself, run in-process with the same
	// configuration file and environment.
	scanFn := func(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) int {
		full := []string{"scan"}
		if configPath != "" {
			full = append(full, "--config", configPath)
		}
		full = append(full, args...)
		return cli.Run(ctx, full, cli.Env{Stdin: stdin, Stdout: stdout, Stderr: env.Stderr, Getenv: env.Getenv,
			IsTerminal: func(io.Writer) bool { return false }})
	}
	err = operator.RunAgent(ctx, kc, operator.AgentOptions{
		VirusScan:  types.NamespacedName{Namespace: ns, Name: name},
		Job:        c.Job,
		Generation: c.Generation,
		Scan:       scanFn,
		Logger:     cli.NewLogger(cfg, env.Stderr),
	})
	if err != nil {
		return errorf(env, err)
	}
	return cli.ExitClean
}

// kubeConfig loads the Kubernetes client configuration: the file given,
// else $KUBECONFIG, else the in-cluster service account, else
// ~/.kube/config.
func kubeConfig(path string, env cli.Env) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	if v := env.Getenv("KUBECONFIG"); v != "" {
		rules.Precedence = filepath.SplitList(v)
	}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, errors.New("kubernetes: no configuration: give --kubeconfig, set KUBECONFIG or run in a cluster")
		}
		return nil, fmt.Errorf("kubernetes: config: %w", err)
	}
	rc.UserAgent = "lazaret/" + cli.BuildVersion()
	return rc, nil
}

// errorf prints an error the way every command does.
func errorf(env cli.Env, err error) int {
	fmt.Fprintf(env.Stderr, "%s: %v\n", cli.OperatorProgram, err)
	return cli.ExitError
}
