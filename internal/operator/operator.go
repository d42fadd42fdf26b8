// Package operator is lazaret's Kubernetes controller. It serves KubeAV's
// resources (av.mittwald.systems/v1beta1 VirusScan and ScheduledVirusScan,
// see package v1beta1): each VirusScan becomes one Job that mounts the
// target volumes read-only and runs `lazaret operator agent`, which scans
// every file with `lazaret scan --json` (through a lazaret server when one
// is configured, so the verdicts go through the one pipeline and are
// stored) and writes the results into the VirusScan's status; the operator
// then sets the phase, conditions and summary. ScheduledVirusScans create
// VirusScans on a cron schedule and delete the completed ones beyond their
// history size. docs/OPERATOR.md describes the design.
//
// Only the lazaret-operator program (cmd/lazaret-operator, package
// operatorcli) links this package and the Kubernetes libraries; `lazaret
// operator` execs it.
package operator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/lazaret/lazaret/internal/operator/v1beta1"
)

// Labels and annotations the operator puts on what it creates.
const (
	// LabelManagedBy marks the Jobs the operator creates; its cache
	// watches only these.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedBy is LabelManagedBy's value.
	ManagedBy = "lazaret-operator"
	// LabelVirusScan names the VirusScan a Job scans for (NameLabel of
	// its name).
	LabelVirusScan = "av.mittwald.systems/virusscan"
	// LabelScheduledBy names the ScheduledVirusScan that created a
	// VirusScan (KubeAV's label, so its history pruning finds ours;
	// NameLabel of its name).
	LabelScheduledBy = "av.mittwald.systems/scheduled-by"
	// AnnotationScheduledAt is the schedule time a ScheduledVirusScan
	// created a VirusScan for, RFC 3339.
	AnnotationScheduledAt = "av.mittwald.systems/scheduled-at"
	// AnnotationGeneration is the VirusScan's metadata.generation a Job
	// was made from: its volumes are that spec's.
	AnnotationGeneration = "av.mittwald.systems/generation"
)

// NameLabel is an object's name as a label value: the name itself when it
// fits a label value's 63 characters, else its first 54 characters and 8
// hex digits of its SHA-256. Object names may have up to 253 characters;
// a longer label value would make the API server refuse what carries it.
func NameLabel(name string) string {
	if len(name) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return strings.TrimRight(name[:54], "-.") + "-" + hex.EncodeToString(sum[:4])
}

// Defaults for Options.
const (
	DefaultImage       = "ghcr.io/lazaret/lazaret:latest"
	DefaultAgentRole   = "lazaret-agent"
	DefaultHistorySize = 5
	// DefaultActiveDeadline bounds a scan Job's run time unless
	// Options.ActiveDeadline says otherwise: a hung scan is stopped and
	// its VirusScan fails (reason DeadlineExceeded) instead of staying
	// Running for ever.
	DefaultActiveDeadline = 24 * time.Hour
)

// Options configure the operator.
type Options struct {
	// Namespace limits the operator to one namespace; "" watches all.
	Namespace string
	// Image is the lazaret image the scan Jobs run.
	Image string
	// ImagePullPolicy for the scan Jobs; the cluster's default when "".
	ImagePullPolicy corev1.PullPolicy
	// Server is the URL of a lazaret server the scan Jobs send the files
	// to (LAZARET_SERVER); "" scans inside the Job with the image's
	// configuration.
	Server string
	// ServerTokenSecret names a Secret, in each VirusScan's namespace,
	// whose "token" key the Jobs use as LAZARET_TOKEN.
	ServerTokenSecret string
	// ServiceAccount, when set, is one account that the Jobs of every
	// VirusScan naming none share; the operator creates it, bound to
	// AgentRole, in the VirusScan's namespace, and so each scan's agent
	// may write the status of every VirusScan there. When "" (the
	// default) each such Job runs as an account of its own (named as the
	// Job, owned by the VirusScan) whose Role allows reading that one
	// VirusScan and patching its status, nothing else: a scan pod taken
	// over by what it scans cannot report for another scan.
	ServiceAccount string
	// AgentRole is the ClusterRole that lets the agent read its
	// VirusScan and write its status (deploy/operator/rbac.yaml), bound
	// to ServiceAccount when that is set.
	AgentRole string
	// ActiveDeadline bounds a scan Job's run time (its
	// activeDeadlineSeconds, rounded up to whole seconds): a Job past it
	// is stopped by Kubernetes and its VirusScan ends Failed with reason
	// DeadlineExceeded. DefaultActiveDeadline when 0; negative is no
	// bound.
	ActiveDeadline time.Duration
	// ReportGrace is how long a Job may be complete without a report
	// before the scan is marked failed (the report and the Job's status
	// reach the operator's cache in either order). Default 2 minutes.
	ReportGrace time.Duration
	// LeaderElection makes several replicas take turns.
	LeaderElection bool
	// LeaderElectionNamespace holds the lease; the in-cluster namespace
	// when "".
	LeaderElectionNamespace string
	// MetricsAddr serves Prometheus metrics; "" serves none.
	MetricsAddr string
	// HealthAddr serves /healthz and /readyz; "" serves none.
	HealthAddr string
	// Logger receives the operator's logs (and client-go's).
	Logger *slog.Logger
	// Now is the clock; time.Now when nil (tests set it).
	Now func() time.Time
}

func (o *Options) setDefaults() {
	if o.Image == "" {
		o.Image = DefaultImage
	}
	if o.AgentRole == "" {
		o.AgentRole = DefaultAgentRole
	}
	if o.ActiveDeadline == 0 {
		o.ActiveDeadline = DefaultActiveDeadline
	}
	if o.ReportGrace == 0 {
		o.ReportGrace = 2 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// NewScheme returns a scheme with Kubernetes' built-in types and the
// av.mittwald.systems resources.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("operator: scheme: %w", err)
	}
	if err := v1beta1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("operator: scheme: %w", err)
	}
	return s, nil
}

// SetProcessLoggers sends the logs of client-go (klog) and of
// controller-runtime's package-level logger to l. They are process-wide
// hooks that klog allows setting only before anything logs, so the
// command's entry point calls this once, never Run (tests run several
// operators in one process).
func SetProcessLoggers(l *slog.Logger) {
	lg := logr.FromSlogHandler(l.Handler())
	klog.SetLogger(lg)
	ctrllog.SetLogger(lg)
}

// Run runs the controllers until ctx is done. It returns nil after a
// clean stop.
func Run(ctx context.Context, cfg *rest.Config, opts Options) error {
	opts.setDefaults()
	scheme, err := NewScheme()
	if err != nil {
		return err
	}
	lg := logr.FromSlogHandler(opts.Logger.Handler())

	metricsAddr := opts.MetricsAddr
	if metricsAddr == "" {
		metricsAddr = "0" // controller-runtime's "off"
	}
	mopts := ctrl.Options{
		Scheme: scheme,
		Logger: lg,
		Cache: cache.Options{
			ByObject: map[client.Object]cache.ByObject{
				// Only the Jobs the operator made, not every Job.
				&batchv1.Job{}: {Label: labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedBy})},
			},
		},
		Metrics:                 metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:  opts.HealthAddr,
		LeaderElection:          opts.LeaderElection,
		LeaderElectionID:        "lazaret-operator.av.mittwald.systems",
		LeaderElectionNamespace: opts.LeaderElectionNamespace,
		// Controller names are process-wide in controller-runtime; a
		// second Run in one process (an operator restart in a test)
		// would otherwise be refused.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	}
	if opts.Namespace != "" {
		mopts.Cache.DefaultNamespaces = map[string]cache.Config{opts.Namespace: {}}
	}
	mgr, err := ctrl.NewManager(cfg, mopts)
	if err != nil {
		return fmt.Errorf("operator: manager: %w", err)
	}
	if opts.HealthAddr != "" {
		if err := mgr.AddHealthzCheck("ping", func(_ *http.Request) error { return nil }); err != nil {
			return fmt.Errorf("operator: health check: %w", err)
		}
		if err := mgr.AddReadyzCheck("cache", func(r *http.Request) error {
			if !mgr.GetCache().WaitForCacheSync(r.Context()) {
				return errors.New("cache not synced")
			}
			return nil
		}); err != nil {
			return fmt.Errorf("operator: ready check: %w", err)
		}
	}
	vs := &virusScanReconciler{
		client: mgr.GetClient(),
		api:    mgr.GetAPIReader(),
		events: mgr.GetEventRecorder("lazaret-operator"),
		opts:   opts,
	}
	if err := ctrl.NewControllerManagedBy(mgr).
		Named("virusscan").
		For(&v1beta1.VirusScan{}).
		Owns(&batchv1.Job{}).
		Complete(vs); err != nil {
		return fmt.Errorf("operator: virusscan controller: %w", err)
	}
	svs := &scheduledReconciler{
		client: mgr.GetClient(),
		api:    mgr.GetAPIReader(),
		events: mgr.GetEventRecorder("lazaret-operator"),
		opts:   opts,
	}
	if err := ctrl.NewControllerManagedBy(mgr).
		Named("scheduledvirusscan").
		For(&v1beta1.ScheduledVirusScan{}).
		Owns(&v1beta1.VirusScan{}).
		Complete(svs); err != nil {
		return fmt.Errorf("operator: scheduledvirusscan controller: %w", err)
	}
	opts.Logger.Info("operator starting", "namespace", opts.Namespace, "image", opts.Image, "server", opts.Server)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("operator: %w", err)
	}
	return nil
}
