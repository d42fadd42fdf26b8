package operator_test

// These tests run against a real Kubernetes API server (etcd and
// kube-apiserver; .ci/kube.sh), named by LAZARET_TEST_KUBECONFIG. There is
// no kubelet and no controller manager: Jobs never get pods, so a test
// plays their part the way a real pod would: it runs `lazaret-operator
// agent` in-process (which scans a real folder and writes the report
// through the API server) and sets the Job's status as the Job controller
// would.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/lazaret/lazaret/internal/cli"
	"github.com/lazaret/lazaret/internal/config"
	"github.com/lazaret/lazaret/internal/operator"
	"github.com/lazaret/lazaret/internal/operator/operatorcli"
	"github.com/lazaret/lazaret/internal/operator/v1beta1"
	"github.com/lazaret/lazaret/internal/server"
	"github.com/lazaret/lazaret/internal/testenv"
)

const crdDir = "../../deploy/operator/crds"

func TestMain(m *testing.M) {
	// Before anything logs (klog's rule): client-go's and
	// controller-runtime's process-wide logs go to stderr, shown when a
	// test fails.
	operator.SetProcessLoggers(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	os.Exit(m.Run())
}

// cluster is a client of the test API server with the CRDs installed.
type cluster struct {
	cfg        *rest.Config
	kubeconfig string
	c          client.Client
}

var (
	crdOnce sync.Once
	crdErr  error
)

func newCluster(t *testing.T) *cluster {
	t.Helper()
	path := testenv.Kubeconfig(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("kubeconfig %s: %v", path, err)
	}
	scheme, err := operator.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	cl := &cluster{cfg: cfg, kubeconfig: path, c: c}
	crdOnce.Do(func() { crdErr = cl.installCRDs(context.Background()) })
	if crdErr != nil {
		t.Fatalf("install CRDs: %v", crdErr)
	}
	return cl
}

// readCRDs reads the manifests in deploy/operator/crds.
func readCRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	files, err := filepath.Glob(filepath.Join(crdDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no CRDs in %s: %v", crdDir, err)
	}
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(raw, &crd); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, &crd)
	}
	return out, nil
}

// installCRDs creates or updates the CRDs and waits until they serve.
func (cl *cluster) installCRDs(ctx context.Context) error {
	crds, err := readCRDs()
	if err != nil {
		return err
	}
	for _, crd := range crds {
		var cur apiextensionsv1.CustomResourceDefinition
		err := cl.c.Get(ctx, client.ObjectKeyFromObject(crd), &cur)
		switch {
		case apierrors.IsNotFound(err):
			err = cl.c.Create(ctx, crd)
		case err == nil:
			crd.ResourceVersion = cur.ResourceVersion
			err = cl.c.Update(ctx, crd)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", crd.Name, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, crd := range crds {
		for {
			var cur apiextensionsv1.CustomResourceDefinition
			if err := cl.c.Get(ctx, client.ObjectKeyFromObject(crd), &cur); err != nil {
				return err
			}
			if crdEstablished(&cur) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not established: %+v", crd.Name, cur.Status.Conditions)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// The client's REST mapping is discovered lazily; a fresh list call
	// proves the resources are served.
	for deadline := time.Now().Add(30 * time.Second); ; {
		err := cl.c.List(ctx, &v1beta1.VirusScanList{}, client.InNamespace("default"))
		if err == nil {
			err = cl.c.List(ctx, &v1beta1.ScheduledVirusScanList{}, client.InNamespace("default"))
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("resources not served: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func crdEstablished(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}

// namespace creates a namespace of the test's own. Namespaces are never
// finalized here (no controller manager), so they are left behind.
func (cl *cluster) namespace(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	name := "lz-" + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.TrimRight(name, "-") + "-" + hex.EncodeToString(b)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := cl.c.Create(context.Background(), ns); err != nil {
		t.Fatalf("namespace: %v", err)
	}
	return name
}

// startOperator runs the operator on namespace ns until the returned
// stop is called (or the test ends).
func (cl *cluster) startOperator(t *testing.T, ns string, mod func(*operator.Options)) (stop func()) {
	t.Helper()
	return cl.startOperatorAs(t, cl.cfg, ns, mod)
}

// startOperatorAs is startOperator with the operator's own client
// configuration (another identity, say).
func (cl *cluster) startOperatorAs(t *testing.T, cfg *rest.Config, ns string, mod func(*operator.Options)) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	opts := operator.Options{
		Namespace: ns,
		Image:     "lazaret:test",
		Server:    "http://lazaret.lazaret-system:8080",
		Logger:    testenv.Logger(t, slog.LevelInfo),
	}
	if mod != nil {
		mod(&opts)
	}
	done := make(chan error, 1)
	go func() { done <- operator.Run(ctx, cfg, opts) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("operator: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("operator did not stop within 30 s")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventually retries f until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not the case after %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// scanDir makes a folder with an EICAR file, a clean file in a
// subfolder, and a symbolic link (not followed).
func scanDir(t *testing.T, infected bool) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"clean.txt": []byte("hello\n"), "sub/notes.md": []byte("# notes\n")}
	if infected {
		files["sub/eicar.com"] = testenv.EICAR
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// hostPathScan is a VirusScan of a host folder mounted where it is, so
// that the agent, running in the test's process, finds the files at the
// paths the Job would mount them at.
func hostPathScan(ns, name string, dirs ...string) *v1beta1.VirusScan {
	vs := &v1beta1.VirusScan{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       v1beta1.VirusScanSpec{Engine: v1beta1.ScanEngineClamAV},
	}
	for _, d := range dirs {
		vs.Spec.Targets = append(vs.Spec.Targets, v1beta1.VirusScanTargetSpec{
			Volume:    v1beta1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: d}},
			MountPath: d,
		})
	}
	return vs
}

// jobsOf lists the Jobs made for a VirusScan.
func (cl *cluster) jobsOf(ctx context.Context, ns, vsName string) ([]batchv1.Job, error) {
	var jobs batchv1.JobList
	err := cl.c.List(ctx, &jobs, client.InNamespace(ns), client.MatchingLabels{operator.LabelVirusScan: operator.NameLabel(vsName)})
	return jobs.Items, err
}

// waitJob waits for the one Job of a VirusScan.
func (cl *cluster) waitJob(t *testing.T, ns, vsName string) *batchv1.Job {
	t.Helper()
	var job *batchv1.Job
	eventually(t, 30*time.Second, "the scan job exists", func() error {
		jobs, err := cl.jobsOf(context.Background(), ns, vsName)
		if err != nil {
			return err
		}
		if len(jobs) != 1 {
			return fmt.Errorf("%d jobs", len(jobs))
		}
		job = &jobs[0]
		return nil
	})
	return job
}

// runAgent runs the agent in-process, with lazaret-operator's command line
// (what the Job's `lazaret operator agent ...` hands over to), as the
// Job's pod would, and returns its exit code and stderr.
func (cl *cluster) runAgent(t *testing.T, ns, vsName, job string) (int, string) {
	t.Helper()
	return cl.runAgentWith(t, cl.kubeconfig, nil, ns, vsName, job)
}

// runAgentWith is runAgent with a kubeconfig and environment of its own.
// It runs the arguments of the Job's container, as its pod would.
func (cl *cluster) runAgentWith(t *testing.T, kubeconfig string, env map[string]string, ns, vsName, job string) (int, string) {
	t.Helper()
	var stdout, stderr testenv.Buffer
	getenv := func(k string) string { return env[k] }
	args := []string{"agent", "--virusscan", ns + "/" + vsName, "--job", job}
	var j batchv1.Job
	if err := cl.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: job}, &j); err != nil {
		t.Fatalf("job %s: %v", job, err)
	}
	if a := j.Spec.Template.Spec.Containers[0].Args; len(a) > 1 && a[0] == "operator" {
		args = slices.Clone(a[1:]) // what `lazaret operator` hands over
	}
	code := operatorcli.Run(context.Background(), append(args, "--kubeconfig", kubeconfig),
		cli.Env{Stdout: &stdout, Stderr: &stderr, Getenv: getenv})
	return code, stderr.String()
}

// finishJob sets a Job's status as the Job controller does when its pod
// ended: Complete (with SuccessCriteriaMet) or Failed (with
// FailureTarget).
func (cl *cluster) finishJob(t *testing.T, job *batchv1.Job, succeeded bool) {
	t.Helper()
	ctx := context.Background()
	eventually(t, 10*time.Second, "job status set", func() error {
		var cur batchv1.Job
		if err := cl.c.Get(ctx, client.ObjectKeyFromObject(job), &cur); err != nil {
			return err
		}
		now := metav1.Now()
		if cur.Status.StartTime == nil { // immutable once set
			start := metav1.NewTime(now.Add(-time.Second))
			cur.Status.StartTime = &start
		}
		cur.Status.Active = 0
		if succeeded {
			cur.Status.Succeeded = 1
			cur.Status.CompletionTime = &now
			cur.Status.Conditions = []batchv1.JobCondition{
				{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: "CompletionsReached", Message: "Reached expected number of succeeded pods", LastProbeTime: now, LastTransitionTime: now},
				{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: "CompletionsReached", Message: "Reached expected number of succeeded pods", LastProbeTime: now, LastTransitionTime: now},
			}
		} else {
			cur.Status.Failed = 3
			cur.Status.Conditions = failedConditions(batchv1.JobReasonBackoffLimitExceeded, "Job has reached the specified backoff limit", now)
		}
		return cl.c.Status().Update(ctx, &cur)
	})
}

// failedConditions are a failed Job's conditions: FailureTarget, then
// Failed, with the same reason, as the Job controller sets them.
func failedConditions(reason, msg string, now metav1.Time) []batchv1.JobCondition {
	return []batchv1.JobCondition{
		{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastProbeTime: now, LastTransitionTime: now},
		{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastProbeTime: now, LastTransitionTime: now},
	}
}

// expireJob sets a Job's status as the Job controller does when the Job
// ran past its activeDeadlineSeconds: its pod killed, then Failed with
// reason DeadlineExceeded. (No controller manager runs here to do it.)
func (cl *cluster) expireJob(t *testing.T, job *batchv1.Job) {
	t.Helper()
	ctx := context.Background()
	eventually(t, 10*time.Second, "job status set", func() error {
		var cur batchv1.Job
		if err := cl.c.Get(ctx, client.ObjectKeyFromObject(job), &cur); err != nil {
			return err
		}
		if cur.Spec.ActiveDeadlineSeconds == nil {
			return errors.New("the job has no activeDeadlineSeconds")
		}
		now := metav1.Now()
		if cur.Status.StartTime == nil { // immutable once set
			start := metav1.NewTime(now.Add(-time.Duration(*cur.Spec.ActiveDeadlineSeconds) * time.Second))
			cur.Status.StartTime = &start
		}
		cur.Status.Active = 0
		cur.Status.Failed = 1
		cur.Status.Conditions = failedConditions(batchv1.JobReasonDeadlineExceeded, "Job was active longer than specified deadline", now)
		return cl.c.Status().Update(ctx, &cur)
	})
}

// waitPhase waits until the VirusScan reaches phase and returns it.
func (cl *cluster) waitPhase(t *testing.T, ns, name string, phase v1beta1.VirusScanPhase) *v1beta1.VirusScan {
	t.Helper()
	var vs v1beta1.VirusScan
	eventually(t, 30*time.Second, "virusscan "+name+" is "+string(phase), func() error {
		if err := cl.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &vs); err != nil {
			return err
		}
		if vs.Status.Phase != phase {
			return fmt.Errorf("phase %q, summary %q", vs.Status.Phase, vs.Status.Summary)
		}
		return nil
	})
	return &vs
}

func TestCRDsInstall(t *testing.T) {
	cl := newCluster(t)
	ctx := context.Background()
	crds, err := readCRDs()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, crd := range crds {
		var cur apiextensionsv1.CustomResourceDefinition
		if err := cl.c.Get(ctx, client.ObjectKeyFromObject(crd), &cur); err != nil {
			t.Fatalf("%s: %v", crd.Name, err)
		}
		if !crdEstablished(&cur) {
			t.Errorf("%s: not established", crd.Name)
		}
		if cur.Spec.Group != "av.mittwald.systems" || cur.Spec.Versions[0].Name != "v1beta1" {
			t.Errorf("%s: got %s/%s, want av.mittwald.systems/v1beta1", crd.Name, cur.Spec.Group, cur.Spec.Versions[0].Name)
		}
		names = append(names, cur.Spec.Names.Kind+"/"+strings.Join(cur.Spec.Names.ShortNames, ","))
	}
	slices.Sort(names)
	if want := []string{"ScheduledVirusScan/svs", "VirusScan/vs"}; !slices.Equal(names, want) {
		t.Errorf("kinds: got %v, want %v", names, want)
	}

	// KubeAV's README examples apply unchanged (with the PVC's field
	// spelled as Kubernetes spells it: claimName).
	ns := cl.namespace(t)
	for _, doc := range []string{`
apiVersion: av.mittwald.systems/v1beta1
kind: VirusScan
metadata:
  name: example-virusscan
spec:
  engine: ClamAV
  targets:
    - volume:
        persistentVolumeClaim:
          claimName: my-pvc
      subPath: path/to/subdir
`, `
apiVersion: av.mittwald.systems/v1beta1
kind: ScheduledVirusScan
metadata:
  name: example-scheduledvirusscan
spec:
  schedule: "0 */3 * * *"
  historySize: 3
  template:
    spec:
      engine: ClamAV
      targets:
        - volume:
            hostPath:
              path: /
          subPath: root/virus
`} {
		u := decode(t, doc, ns)
		if err := cl.c.Create(ctx, u); err != nil {
			t.Errorf("create %s: %v", u.GetKind(), err)
		}
	}
	var vs v1beta1.VirusScan
	if err := cl.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "example-virusscan"}, &vs); err != nil {
		t.Fatal(err)
	}
	if got := vs.Spec.Targets[0].Volume.PersistentVolumeClaim; got == nil || got.ClaimName != "my-pvc" || vs.Spec.Targets[0].SubPath != "path/to/subdir" {
		t.Errorf("virusscan spec read back: %+v", vs.Spec.Targets)
	}
}

func decode(t *testing.T, doc, ns string) *unstructured.Unstructured {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetNamespace(ns)
	return u
}

func TestBadSpecsRejected(t *testing.T) {
	cl := newCluster(t)
	ns := cl.namespace(t)
	tests := []struct {
		name string
		doc  string
		want []string // in the API server's message
	}{
		{"no targets", `kind: VirusScan
spec: {engine: ClamAV}`, []string{"spec.targets: Required value"}},
		{"empty targets", `kind: VirusScan
spec: {targets: []}`, []string{"spec.targets: Invalid value", "should have at least 1 items"}},
		{"unknown engine", `kind: VirusScan
spec: {engine: Sophos, targets: [{volume: {emptyDir: {}}}]}`, []string{`spec.engine: Unsupported value: "Sophos"`, `"ClamAV"`}},
		{"no volume source", `kind: VirusScan
spec: {targets: [{volume: {}}]}`, []string{"spec.targets[0].volume", "should have at least 1 properties"}},
		{"two volume sources", `kind: VirusScan
spec: {targets: [{volume: {emptyDir: {}, hostPath: {path: /}}}]}`, []string{"spec.targets[0].volume: Too many: 2: must have at most 1 item"}},
		{"subPath escapes", `kind: VirusScan
spec: {targets: [{volume: {emptyDir: {}}, subPath: a/../../etc}]}`, []string{"spec.targets[0].subPath", "subPath must be a relative path inside the volume, without '..'"}},
		{"absolute subPath", `kind: VirusScan
spec: {targets: [{volume: {emptyDir: {}}, subPath: /etc}]}`, []string{"spec.targets[0].subPath", "subPath must be a relative path"}},
		{"relative mountPath", `kind: VirusScan
spec: {targets: [{volume: {emptyDir: {}}, mountPath: scan}]}`, []string{"spec.targets[0].mountPath", "should match '^/.+'"}},
		{"mountPath with ..", `kind: VirusScan
spec: {targets: [{volume: {emptyDir: {}}, mountPath: /scan/../etc}]}`, []string{"spec.targets[0].mountPath", "without . or .. parts"}},
		{"mountPath over a system folder", `kind: VirusScan
spec: {targets: [{volume: {emptyDir: {}}, mountPath: /var/run/secrets/kubernetes.io}]}`, []string{"spec.targets[0].mountPath", "must not be at or under /etc"}},
		{"mountPath over the scanner", `kind: VirusScan
spec: {targets: [{volume: {emptyDir: {}}, mountPath: /lazaret}]}`, []string{"spec.targets[0].mountPath", "must not be at or under /etc"}},
		{"shared mountPath", `kind: VirusScan
spec: {targets: [{volume: {emptyDir: {}}, mountPath: /a}, {volume: {emptyDir: {}}, mountPath: /a}]}`, []string{"spec.targets", "every target needs its own mountPath"}},
		{"bad schedule", `kind: ScheduledVirusScan
spec: {schedule: every hour, template: {spec: {targets: [{volume: {emptyDir: {}}}]}}}`, []string{"spec.schedule: Invalid value", "should match"}},
		{"negative history", `kind: ScheduledVirusScan
spec: {schedule: "@daily", historySize: -1, template: {spec: {targets: [{volume: {emptyDir: {}}}]}}}`, []string{"spec.historySize: Invalid value", "should be greater than or equal to 0"}},
		{"no template", `kind: ScheduledVirusScan
spec: {schedule: "@daily"}`, []string{"spec.template: Required value"}},
		{"template without targets", `kind: ScheduledVirusScan
spec: {schedule: "@daily", template: {spec: {engine: ClamAV}}}`, []string{"spec.template.spec.targets: Required value"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := decode(t, "apiVersion: av.mittwald.systems/v1beta1\n"+tt.doc, ns)
			u.SetName(fmt.Sprintf("bad-%d", i))
			err := cl.c.Create(context.Background(), u)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("got %v, want an Invalid error", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to contain %q", err.Error(), w)
				}
			}
		})
	}
	// And the good schedules the pattern lets through.
	for i, s := range []string{"0 */3 * * *", "@hourly", "@every 90s", "CRON_TZ=Europe/Berlin 0 3 * * *"} {
		u := decode(t, `apiVersion: av.mittwald.systems/v1beta1
kind: ScheduledVirusScan
spec: {template: {spec: {targets: [{volume: {emptyDir: {}}}]}}}`, ns)
		u.SetName(fmt.Sprintf("good-%d", i))
		unstructured.SetNestedField(u.Object, s, "spec", "schedule")
		if err := cl.c.Create(context.Background(), u); err != nil {
			t.Errorf("schedule %q: %v", s, err)
		}
	}
}

func TestVirusScanCreatesOneJob(t *testing.T) {
	cl := newCluster(t)
	ctx := context.Background()
	ns := cl.namespace(t)
	stop := cl.startOperator(t, ns, func(o *operator.Options) { o.ServerTokenSecret = "lazaret-token" })

	vs := hostPathScan(ns, "once", "/srv/data")
	vs.Spec.Targets[0].MountPath = ""
	vs.Spec.Targets[0].SubPath = "uploads"
	vs.Spec.Targets = append(vs.Spec.Targets, v1beta1.VirusScanTargetSpec{
		Volume:    v1beta1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "shared"}},
		MountPath: "/data/shared",
	})
	if err := cl.c.Create(ctx, vs); err != nil {
		t.Fatal(err)
	}
	job := cl.waitJob(t, ns, vs.Name)
	if job.Name != operator.JobName(vs) {
		t.Errorf("job name: got %s, want %s", job.Name, operator.JobName(vs))
	}
	if !metav1.IsControlledBy(job, vs) {
		t.Errorf("job owner: got %+v, want the VirusScan", job.OwnerReferences)
	}
	pod := job.Spec.Template.Spec
	ctr := pod.Containers[0]
	if want := []string{"operator", "agent", "--virusscan", ns + "/once", "--job", job.Name, "--generation", "1"}; !slices.Equal(ctr.Args, want) {
		t.Errorf("args: got %q, want %q", ctr.Args, want)
	}
	if ctr.Image != "lazaret:test" || pod.ServiceAccountName != job.Name || pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("image %q, service account %q, restart policy %q", ctr.Image, pod.ServiceAccountName, pod.RestartPolicy)
	}
	// Bounded by default: a hung scan does not run for ever.
	if d := job.Spec.ActiveDeadlineSeconds; d == nil || *d != 24*60*60 {
		t.Errorf("activeDeadlineSeconds: got %v, want 24 hours", d)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range ctr.Env {
		env[e.Name] = e
	}
	if env["LAZARET_SERVER"].Value != "http://lazaret.lazaret-system:8080" {
		t.Errorf("LAZARET_SERVER: got %+v", env["LAZARET_SERVER"])
	}
	if ref := env["LAZARET_TOKEN"].ValueFrom; ref == nil || ref.SecretKeyRef.Name != "lazaret-token" || ref.SecretKeyRef.Key != "token" {
		t.Errorf("LAZARET_TOKEN: got %+v", env["LAZARET_TOKEN"])
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range ctr.VolumeMounts {
		mounts[m.MountPath] = m
	}
	for path, sub := range map[string]string{"/scan/scan-target-0": "uploads", "/data/shared": ""} {
		m, ok := mounts[path]
		if !ok || !m.ReadOnly || m.SubPath != sub {
			t.Errorf("mount %s: got %+v (present %v), want read-only with subPath %q", path, m, ok, sub)
		}
	}
	// The scan's own account, its Role and their binding, owned by the
	// VirusScan.
	var sa corev1.ServiceAccount
	if err := cl.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: job.Name}, &sa); err != nil {
		t.Errorf("agent service account: %v", err)
	} else if !metav1.IsControlledBy(&sa, vs) {
		t.Errorf("agent service account owners: got %+v, want the VirusScan", sa.OwnerReferences)
	}
	var role rbacv1.Role
	if err := cl.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: job.Name}, &role); err != nil {
		t.Errorf("agent role: %v", err)
	} else {
		for _, rule := range role.Rules {
			if !slices.Equal(rule.ResourceNames, []string{vs.Name}) {
				t.Errorf("agent role rule %+v: want it limited to %s", rule, vs.Name)
			}
		}
	}
	var rb rbacv1.RoleBinding
	if err := cl.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: job.Name}, &rb); err != nil {
		t.Errorf("agent role binding: %v", err)
	} else if rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != job.Name {
		t.Errorf("role binding: got role %+v, want Role %s", rb.RoleRef, job.Name)
	}
	var got v1beta1.VirusScan
	eventually(t, 10*time.Second, "status records the job", func() error {
		if err := cl.c.Get(ctx, client.ObjectKeyFromObject(vs), &got); err != nil {
			return err
		}
		if got.Status.Job == nil || got.Status.Job.Name != job.Name || got.Status.Condition(v1beta1.VirusScanConditionTypeScheduled) != corev1.ConditionTrue {
			return fmt.Errorf("status %+v", got.Status)
		}
		if got.Status.Phase != v1beta1.VirusScanPhasePending {
			return fmt.Errorf("phase %q", got.Status.Phase)
		}
		return nil
	})

	// An operator that stopped after making the Job but before writing
	// the status: the next one finds the Job and makes no other.
	stop()
	if err := cl.c.Status().Patch(ctx, &got, client.RawPatch(types.MergePatchType,
		[]byte(`{"status":{"job":null,"conditions":null,"phase":null,"summary":null}}`))); err != nil {
		t.Fatal(err)
	}
	cl.startOperator(t, ns, nil)
	eventually(t, 30*time.Second, "the restarted operator records the job", func() error {
		if err := cl.c.Get(ctx, client.ObjectKeyFromObject(vs), &got); err != nil {
			return err
		}
		if got.Status.Job == nil {
			return errors.New("no job in status")
		}
		return nil
	})
	jobs, err := cl.jobsOf(ctx, ns, vs.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || jobs[0].UID != job.UID || got.Status.Job.UID != job.UID {
		t.Errorf("after restart: got %d jobs (status names %s), want the one job %s", len(jobs), got.Status.Job.Name, job.UID)
	}
}

func TestVirusScanReportsVerdicts(t *testing.T) {
	cl := newCluster(t)
	ctx := context.Background()
	ns := cl.namespace(t)
	cl.startOperator(t, ns, nil)

	infected, clean := scanDir(t, true), scanDir(t, false)
	vs := hostPathScan(ns, "mixed", infected, clean)
	if err := cl.c.Create(ctx, vs); err != nil {
		t.Fatal(err)
	}
	job := cl.waitJob(t, ns, vs.Name)
	// The Job controller reports the pod running.
	eventually(t, 10*time.Second, "job status active", func() error {
		var cur batchv1.Job
		if err := cl.c.Get(ctx, client.ObjectKeyFromObject(job), &cur); err != nil {
			return err
		}
		now := metav1.Now()
		cur.Status.StartTime, cur.Status.Active = &now, 1
		return cl.c.Status().Update(ctx, &cur)
	})
	if got := cl.waitPhase(t, ns, vs.Name, v1beta1.VirusScanPhaseRunning); got.Status.Summary != "Running" {
		t.Errorf("summary while running: got %q", got.Status.Summary)
	}
	if code, stderr := cl.runAgent(t, ns, vs.Name, job.Name); code != 0 {
		t.Fatalf("agent: exit %d: %s", code, stderr)
	}
	cl.finishJob(t, job, true)
	got := cl.waitPhase(t, ns, vs.Name, v1beta1.VirusScanPhaseCompletedPositive)
	cl.waitWarning(t, 10*time.Second, ns, vs.Name, "InfectedFilesFound")

	wantResults := []v1beta1.VirusScanResultItem{{FilePath: filepath.Join(infected, "sub/eicar.com"), MatchingSignature: testenv.EICARSignature}}
	if !slices.Equal(got.Status.ScanResults, wantResults) {
		t.Errorf("scanResults: got %+v, want %+v", got.Status.ScanResults, wantResults)
	}
	if len(got.Status.ScanErrors) != 0 {
		t.Errorf("scanErrors: got %+v, want none", got.Status.ScanErrors)
	}
	if r := got.Status.Report; r == nil || r.ScannedFiles != 5 || r.InfectedFiles != 1 || r.FailedFiles != 0 || r.Job != job.Name {
		t.Errorf("report: got %+v, want 5 scanned, 1 infected, 0 failed, job %s", r, job.Name)
	}
	if got.Status.Summary != "Completed (1 infected files)" {
		t.Errorf("summary: got %q", got.Status.Summary)
	}
	for cond, want := range map[v1beta1.VirusScanConditionType]corev1.ConditionStatus{
		v1beta1.VirusScanConditionTypeScheduled: corev1.ConditionTrue,
		v1beta1.VirusScanConditionTypeCompleted: corev1.ConditionTrue,
		v1beta1.VirusScanConditionTypePositive:  corev1.ConditionTrue,
	} {
		if c := got.Status.Conditions[cond]; c.Status != want || c.Type != cond || c.LastTransitionTime.IsZero() {
			t.Errorf("condition %s: got %+v, want %s", cond, c, want)
		}
	}

	// All clean: CompletedNegative, Positive False.
	vs2 := hostPathScan(ns, "clean", clean)
	if err := cl.c.Create(ctx, vs2); err != nil {
		t.Fatal(err)
	}
	job2 := cl.waitJob(t, ns, vs2.Name)
	if code, stderr := cl.runAgent(t, ns, vs2.Name, job2.Name); code != 0 {
		t.Fatalf("agent: exit %d: %s", code, stderr)
	}
	cl.finishJob(t, job2, true)
	got2 := cl.waitPhase(t, ns, vs2.Name, v1beta1.VirusScanPhaseCompletedNegative)
	if got2.Status.Condition(v1beta1.VirusScanConditionTypePositive) != corev1.ConditionFalse || len(got2.Status.ScanResults) != 0 {
		t.Errorf("clean scan: got %+v", got2.Status)
	}
}

// A file that cannot be scanned makes the scan Failed, never negative.
func TestVirusScanFailsClosed(t *testing.T) {
	cl := newCluster(t)
	ctx := context.Background()
	ns := cl.namespace(t)
	cl.startOperator(t, ns, func(o *operator.Options) {
		o.ReportGrace = time.Second
		o.ActiveDeadline = 2 * time.Second
	})

	t.Run("unscannable target", func(t *testing.T) {
		clean := scanDir(t, false)
		missing := filepath.Join(t.TempDir(), "not-mounted")
		vs := hostPathScan(ns, "missing", clean, missing)
		if err := cl.c.Create(ctx, vs); err != nil {
			t.Fatal(err)
		}
		job := cl.waitJob(t, ns, vs.Name)
		if code, stderr := cl.runAgent(t, ns, vs.Name, job.Name); code != 0 {
			t.Fatalf("agent: exit %d: %s", code, stderr)
		}
		cl.finishJob(t, job, true)
		got := cl.waitPhase(t, ns, vs.Name, v1beta1.VirusScanPhaseFailed)
		if got.Status.Condition(v1beta1.VirusScanConditionTypePositive) != corev1.ConditionUnknown {
			t.Errorf("Positive: got %s, want Unknown", got.Status.Condition(v1beta1.VirusScanConditionTypePositive))
		}
		want := []v1beta1.VirusScanErrorItem{{FilePath: missing, Verdict: "error", Reason: "not_found"}}
		if len(got.Status.ScanErrors) != 1 || got.Status.ScanErrors[0].FilePath != want[0].FilePath || got.Status.ScanErrors[0].Reason != want[0].Reason {
			t.Errorf("scanErrors: got %+v, want %+v", got.Status.ScanErrors, want)
		}
		if got.Status.Summary != "Failed (1 files not scanned)" {
			t.Errorf("summary: got %q", got.Status.Summary)
		}
	})
	t.Run("job failed", func(t *testing.T) {
		vs := hostPathScan(ns, "job-failed", "/nonexistent")
		if err := cl.c.Create(ctx, vs); err != nil {
			t.Fatal(err)
		}
		job := cl.waitJob(t, ns, vs.Name)
		cl.finishJob(t, job, false)
		got := cl.waitPhase(t, ns, vs.Name, v1beta1.VirusScanPhaseFailed)
		if c := got.Status.Conditions[v1beta1.VirusScanConditionTypeCompleted]; c.Reason != "JobFailed" || !strings.Contains(c.Message, "BackoffLimitExceeded") {
			t.Errorf("Completed: got %+v, want reason JobFailed naming the job's reason", c)
		}
		if !strings.HasPrefix(got.Status.Summary, "Failed (scan job ") {
			t.Errorf("summary: got %q", got.Status.Summary)
		}
	})
	t.Run("job past its deadline", func(t *testing.T) {
		vs := hostPathScan(ns, "deadline", "/nonexistent")
		if err := cl.c.Create(ctx, vs); err != nil {
			t.Fatal(err)
		}
		job := cl.waitJob(t, ns, vs.Name)
		if d := job.Spec.ActiveDeadlineSeconds; d == nil || *d != 2 {
			t.Fatalf("activeDeadlineSeconds: got %v, want 2 (the operator's ActiveDeadline)", d)
		}
		cl.expireJob(t, job)
		got := cl.waitPhase(t, ns, vs.Name, v1beta1.VirusScanPhaseFailed)
		c := got.Status.Conditions[v1beta1.VirusScanConditionTypeCompleted]
		if c.Status != corev1.ConditionTrue || c.Reason != "DeadlineExceeded" || !strings.Contains(c.Message, "ran past its deadline of 2s") {
			t.Errorf("Completed: got %+v, want True, reason DeadlineExceeded and a message naming the 2s deadline", c)
		}
		if p := got.Status.Condition(v1beta1.VirusScanConditionTypePositive); p != corev1.ConditionUnknown {
			t.Errorf("Positive: got %s, want Unknown", p)
		}
		if want := "Failed (scan job " + job.Name + " ran past its deadline of 2s"; !strings.HasPrefix(got.Status.Summary, want) {
			t.Errorf("summary: got %q, want it to start %q", got.Status.Summary, want)
		}
	})
	t.Run("job complete without report", func(t *testing.T) {
		vs := hostPathScan(ns, "no-report", "/nonexistent")
		if err := cl.c.Create(ctx, vs); err != nil {
			t.Fatal(err)
		}
		job := cl.waitJob(t, ns, vs.Name)
		cl.finishJob(t, job, true)
		got := cl.waitPhase(t, ns, vs.Name, v1beta1.VirusScanPhaseFailed)
		if c := got.Status.Conditions[v1beta1.VirusScanConditionTypeCompleted]; c.Reason != "NoReport" {
			t.Errorf("Completed: got %+v, want reason NoReport", c)
		}
	})
	t.Run("bad exclusion pattern", func(t *testing.T) {
		vs := hostPathScan(ns, "bad-regexp", "/nonexistent")
		vs.Spec.Targets[0].ExcludeFiles = []string{"(unclosed"}
		if err := cl.c.Create(ctx, vs); err != nil {
			t.Fatal(err)
		}
		got := cl.waitPhase(t, ns, vs.Name, v1beta1.VirusScanPhaseFailed)
		if c := got.Status.Conditions[v1beta1.VirusScanConditionTypeCompleted]; c.Reason != "InvalidSpec" || !strings.Contains(c.Message, "spec.targets[0].excludeFiles[0]") {
			t.Errorf("Completed: got %+v", c)
		}
		if jobs, _ := cl.jobsOf(ctx, ns, vs.Name); len(jobs) != 0 {
			t.Errorf("got %d jobs for an invalid spec, want 0", len(jobs))
		}
	})
}

// A VirusScan whose spec changed after its Job was made is not answered
// with the results of the Job's volumes (the old spec's): it fails.
func TestVirusScanSpecChanged(t *testing.T) {
	cl := newCluster(t)
	ctx := context.Background()
	ns := cl.namespace(t)
	stop := cl.startOperator(t, ns, nil)
	infected, clean := scanDir(t, true), scanDir(t, false)

	// retarget points the VirusScan at the clean folder, as if its volume
	// were changed to another.
	retarget := func(t *testing.T, vs *v1beta1.VirusScan) {
		t.Helper()
		eventually(t, 10*time.Second, "spec updated", func() error {
			var cur v1beta1.VirusScan
			if err := cl.c.Get(ctx, client.ObjectKeyFromObject(vs), &cur); err != nil {
				return err
			}
			cur.Spec.Targets = hostPathScan(ns, "", clean).Spec.Targets
			return cl.c.Update(ctx, &cur)
		})
	}

	t.Run("before the agent starts", func(t *testing.T) {
		vs := hostPathScan(ns, "changed-early", infected)
		if err := cl.c.Create(ctx, vs); err != nil {
			t.Fatal(err)
		}
		job := cl.waitJob(t, ns, vs.Name)
		retarget(t, vs)
		if code, stderr := cl.runAgent(t, ns, vs.Name, job.Name); code == 0 || !strings.Contains(stderr, "spec changed") {
			t.Errorf("agent for a changed spec: exit %d, stderr %q; want an error naming the change", code, stderr)
		}
		got := cl.waitPhase(t, ns, vs.Name, v1beta1.VirusScanPhaseFailed)
		if c := got.Status.Conditions[v1beta1.VirusScanConditionTypeCompleted]; c.Reason != "SpecChanged" {
			t.Errorf("Completed: got %+v, want reason SpecChanged", c)
		}
	})
	t.Run("while the agent scans", func(t *testing.T) {
		vs := hostPathScan(ns, "changed-late", infected)
		if err := cl.c.Create(ctx, vs); err != nil {
			t.Fatal(err)
		}
		job := cl.waitJob(t, ns, vs.Name)
		eventually(t, 10*time.Second, "job recorded", func() error {
			var cur v1beta1.VirusScan
			if err := cl.c.Get(ctx, client.ObjectKeyFromObject(vs), &cur); err != nil {
				return err
			}
			if cur.Status.Job == nil {
				return errors.New("no job in status")
			}
			return nil
		})
		// The operator is away while the agent reports on generation 1
		// and the spec moves to generation 2.
		stop()
		if code, stderr := cl.runAgent(t, ns, vs.Name, job.Name); code != 0 {
			t.Fatalf("agent: exit %d: %s", code, stderr)
		}
		retarget(t, vs)
		cl.startOperator(t, ns, nil)
		got := cl.waitPhase(t, ns, vs.Name, v1beta1.VirusScanPhaseFailed)
		if c := got.Status.Conditions[v1beta1.VirusScanConditionTypeCompleted]; c.Reason != "SpecChanged" {
			t.Errorf("Completed: got %+v, want reason SpecChanged", c)
		}
	})
}

func TestScheduledVirusScan(t *testing.T) {
	cl := newCluster(t)
	ctx := context.Background()
	ns := cl.namespace(t)
	cl.startOperator(t, ns, nil)

	svs := &v1beta1.ScheduledVirusScan{
		ObjectMeta: metav1.ObjectMeta{Name: "every-second", Namespace: ns},
		Spec: v1beta1.ScheduledVirusScanSpec{
			Schedule:    "@every 1s",
			HistorySize: ptr.To[int32](2),
			Template: v1beta1.VirusScanTemplate{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"team": "storage"}, Annotations: map[string]string{"note": "nightly"}},
				Spec:       hostPathScan(ns, "", "/srv").Spec,
			},
		},
	}
	if err := cl.c.Create(ctx, svs); err != nil {
		t.Fatal(err)
	}
	// Play every scan's pod: report an empty, clean scan for each new
	// VirusScan, until five were created.
	seen := map[string]bool{}
	var order []string
	eventually(t, 60*time.Second, "five VirusScans were scheduled", func() error {
		var list v1beta1.VirusScanList
		if err := cl.c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		for i := range list.Items {
			vs := &list.Items[i]
			if !seen[vs.Name] {
				seen[vs.Name] = true
				order = append(order, vs.Name)
				if vs.Labels[operator.LabelScheduledBy] != svs.Name || vs.Labels["team"] != "storage" || vs.Annotations["note"] != "nightly" || !metav1.IsControlledBy(vs, svs) {
					t.Errorf("virusscan %s: labels %v, annotations %v, owners %+v", vs.Name, vs.Labels, vs.Annotations, vs.OwnerReferences)
				}
			}
			if vs.Status.Report == nil {
				body := fmt.Sprintf(`{"status":{"scanResults":[],"scanErrors":[],"report":{"job":%q,"generation":%d,"reportedAt":%q,"scannedFiles":0,"infectedFiles":0,"failedFiles":0}}}`,
					operator.JobName(vs), vs.Generation, time.Now().UTC().Format(time.RFC3339))
				if err := cl.c.Status().Patch(ctx, vs, client.RawPatch(types.MergePatchType, []byte(body))); err != nil && !apierrors.IsNotFound(err) {
					return err
				}
			}
		}
		if len(seen) < 5 {
			return fmt.Errorf("%d scheduled so far", len(seen))
		}
		return nil
	})
	// The newest two completed scans are kept, the older ones deleted.
	eventually(t, 30*time.Second, "history pruned to 2", func() error {
		var list v1beta1.VirusScanList
		if err := cl.c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		var finished []string
		for _, vs := range list.Items {
			if vs.Status.Finished() {
				finished = append(finished, vs.Name)
			}
		}
		if len(finished) > 2 {
			return fmt.Errorf("%d completed scans kept: %v", len(finished), finished)
		}
		for _, old := range order[:3] {
			if slices.Contains(finished, old) {
				return fmt.Errorf("old scan %s still there", old)
			}
		}
		return nil
	})
	var got v1beta1.ScheduledVirusScan
	if err := cl.c.Get(ctx, client.ObjectKeyFromObject(svs), &got); err != nil {
		t.Fatal(err)
	}
	if got.Status.LastScheduledScan == nil || got.Status.LastScheduledTime == nil ||
		got.Status.LastScheduledScan.Name != operator.ScanName(svs.Name, got.Status.LastScheduledTime.Time) {
		t.Errorf("status: got %+v", got.Status)
	}
	if err := cl.c.Delete(ctx, svs); err != nil {
		t.Fatal(err)
	}
}

// An operator that stopped between creating a schedule time's VirusScan
// and recording it finds that VirusScan on restart and records it, UID
// included; a VirusScan of that name that is not the schedule's is not
// claimed.
func TestScheduledVirusScanAfterRestart(t *testing.T) {
	cl := newCluster(t)
	ctx := context.Background()
	ns := cl.namespace(t)

	create := func(name string) (*v1beta1.ScheduledVirusScan, time.Time) {
		t.Helper()
		svs := &v1beta1.ScheduledVirusScan{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: v1beta1.ScheduledVirusScanSpec{
				Schedule: "@every 1h",
				Template: v1beta1.VirusScanTemplate{Spec: hostPathScan(ns, "", "/srv").Spec},
			},
		}
		if err := cl.c.Create(ctx, svs); err != nil {
			t.Fatal(err)
		}
		// "@every 1h" counts from the creation (whole seconds): the
		// first time is an hour after it.
		return svs, svs.CreationTimestamp.Add(time.Hour).UTC()
	}
	svs, due := create("restarted")
	taken, takenDue := create("taken")
	foreign := hostPathScan(ns, operator.ScanName(taken.Name, takenDue), "/srv")
	if err := cl.c.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	// A clock 90 minutes after the creations: one time due for each
	// schedule, the same in every run of the operator.
	now := svs.CreationTimestamp.Add(90 * time.Minute)
	clock := func(o *operator.Options) { o.Now = func() time.Time { return now } }

	// recorded waits until the schedule's status names its VirusScan
	// for the due time and returns the status.
	recorded := func(t *testing.T) v1beta1.ScheduledVirusScanStatus {
		t.Helper()
		var got v1beta1.ScheduledVirusScan
		eventually(t, 30*time.Second, "the status records the scan", func() error {
			if err := cl.c.Get(ctx, client.ObjectKeyFromObject(svs), &got); err != nil {
				return err
			}
			st := got.Status
			if st.LastScheduledScan == nil || st.LastScheduledTime == nil {
				return fmt.Errorf("status %+v", st)
			}
			if !st.LastScheduledTime.Equal(&metav1.Time{Time: due}) || st.LastScheduledScan.Name != operator.ScanName(svs.Name, due) {
				return fmt.Errorf("status names %s at %s, want %s at %s", st.LastScheduledScan.Name, st.LastScheduledTime, operator.ScanName(svs.Name, due), due)
			}
			return nil
		})
		return got.Status
	}

	stop := cl.startOperator(t, ns, clock)
	first := recorded(t)
	var vs v1beta1.VirusScan
	if err := cl.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: first.LastScheduledScan.Name}, &vs); err != nil {
		t.Fatal(err)
	}
	if first.LastScheduledScan.UID != vs.UID {
		t.Errorf("first run: status UID %q, want the VirusScan's %q", first.LastScheduledScan.UID, vs.UID)
	}

	t.Run("name taken", func(t *testing.T) {
		cl.waitWarning(t, 30*time.Second, ns, taken.Name, "ScanConflict")
		var got v1beta1.ScheduledVirusScan
		if err := cl.c.Get(ctx, client.ObjectKeyFromObject(taken), &got); err != nil {
			t.Fatal(err)
		}
		if got.Status.LastScheduledScan != nil || got.Status.LastScheduledTime != nil {
			t.Errorf("status: got %+v, want nothing recorded (the VirusScan there is not the schedule's)", got.Status)
		}
		var cur v1beta1.VirusScan
		if err := cl.c.Get(ctx, client.ObjectKeyFromObject(foreign), &cur); err != nil {
			t.Fatal(err)
		}
		if len(cur.OwnerReferences) != 0 || cur.Labels[operator.LabelScheduledBy] != "" {
			t.Errorf("the other VirusScan: owners %+v, labels %v; want it untouched", cur.OwnerReferences, cur.Labels)
		}
	})

	t.Run("restart before the status", func(t *testing.T) {
		// The operator stops after creating the VirusScan and before
		// recording it: the next one's create answers AlreadyExists.
		stop()
		if err := cl.c.Status().Patch(ctx, svs, client.RawPatch(types.MergePatchType,
			[]byte(`{"status":{"lastScheduledScan":null,"lastScheduledTime":null}}`))); err != nil {
			t.Fatal(err)
		}
		cl.startOperator(t, ns, clock)
		got := recorded(t)
		if got.LastScheduledScan.UID != vs.UID {
			t.Errorf("after restart: status UID %q, want the VirusScan's %q", got.LastScheduledScan.UID, vs.UID)
		}
		var list v1beta1.VirusScanList
		if err := cl.c.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{operator.LabelScheduledBy: svs.Name}); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 1 || list.Items[0].UID != vs.UID {
			t.Errorf("after restart: got %d VirusScans of the schedule, want the one %s", len(list.Items), vs.UID)
		}
	})
}

// Names longer than a label value's 63 characters (VirusScans and
// ScheduledVirusScans may have up to 253) still make Jobs and VirusScans
// the API server takes.
func TestLongNames(t *testing.T) {
	cl := newCluster(t)
	ctx := context.Background()
	ns := cl.namespace(t)
	cl.startOperator(t, ns, nil)

	long := strings.Repeat("long-name.", 7) + "scan" // 74 characters
	vs := hostPathScan(ns, long, scanDir(t, true))
	if err := cl.c.Create(ctx, vs); err != nil {
		t.Fatal(err)
	}
	job := cl.waitJob(t, ns, vs.Name)
	if got := job.Labels[operator.LabelVirusScan]; len(got) > 63 || got != operator.NameLabel(long) {
		t.Errorf("job label: got %q, want %q", got, operator.NameLabel(long))
	}
	if code, stderr := cl.runAgent(t, ns, vs.Name, job.Name); code != 0 {
		t.Fatalf("agent: exit %d: %s", code, stderr)
	}
	cl.finishJob(t, job, true)
	cl.waitPhase(t, ns, vs.Name, v1beta1.VirusScanPhaseCompletedPositive)

	// A ScheduledVirusScan whose name fits a label, but whose VirusScans'
	// names (a Unix time added) do not.
	svs := &v1beta1.ScheduledVirusScan{
		ObjectMeta: metav1.ObjectMeta{Name: strings.Repeat("n", 60), Namespace: ns},
		Spec: v1beta1.ScheduledVirusScanSpec{
			Schedule: "@every 1s",
			Template: v1beta1.VirusScanTemplate{Spec: hostPathScan(ns, "", "/srv").Spec},
		},
	}
	if err := cl.c.Create(ctx, svs); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "a scheduled VirusScan with its Job", func() error {
		var list v1beta1.VirusScanList
		if err := cl.c.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{operator.LabelScheduledBy: operator.NameLabel(svs.Name)}); err != nil {
			return err
		}
		for i := range list.Items {
			s := &list.Items[i]
			if s.Status.Phase == v1beta1.VirusScanPhaseFailed {
				return fmt.Errorf("%s failed: %s", s.Name, s.Status.Summary)
			}
			var job batchv1.Job
			if err := cl.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: operator.JobName(s)}, &job); err == nil {
				return nil
			}
		}
		return fmt.Errorf("%d scheduled, none with a job", len(list.Items))
	})
	if err := cl.c.Delete(ctx, svs); err != nil {
		t.Fatal(err)
	}
}

// The scheme knows every kind the CRDs serve.
func TestSchemeMatchesCRDs(t *testing.T) {
	crds, err := readCRDs()
	if err != nil {
		t.Fatal(err)
	}
	scheme, err := operator.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range crds {
		for _, kind := range []string{crd.Spec.Names.Kind, crd.Spec.Names.ListKind} {
			gvk := v1beta1.GroupVersion.WithKind(kind)
			if !scheme.Recognizes(gvk) {
				t.Errorf("scheme does not know %s", gvk)
			}
		}
	}
	var _ runtime.Object = &v1beta1.VirusScan{}
}

// applyManifest creates (or updates) every object of a YAML file.
func (cl *cluster) applyManifest(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if ns := u.GetNamespace(); ns != "" {
			err := cl.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
		}
		cur := &unstructured.Unstructured{}
		cur.SetGroupVersionKind(u.GroupVersionKind())
		err := cl.c.Get(ctx, client.ObjectKeyFromObject(u), cur)
		switch {
		case apierrors.IsNotFound(err):
			err = cl.c.Create(ctx, u)
		case err == nil:
			u.SetResourceVersion(cur.GetResourceVersion())
			err = cl.c.Update(ctx, u)
		}
		if err != nil {
			t.Fatalf("%s: %s %s: %v", path, u.GetKind(), u.GetName(), err)
		}
	}
}

// serviceAccount is the identity of a service account, for impersonation.
func serviceAccount(ns, name string) rest.ImpersonationConfig {
	return rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + ns + ":" + name,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
}

// The operator and the agent work with exactly the rights
// deploy/operator/rbac.yaml gives them: both run as their service
// accounts here.
func TestDeployedRBAC(t *testing.T) {
	cl := newCluster(t)
	ctx := context.Background()
	cl.applyManifest(t, "../../deploy/operator/rbac.yaml")
	ns := cl.namespace(t)

	opCfg := rest.CopyConfig(cl.cfg)
	opCfg.Impersonate = serviceAccount("lazaret-system", "lazaret-operator")
	cl.startOperatorAs(t, opCfg, ns, nil)

	dir := scanDir(t, true)
	vs := hostPathScan(ns, "rbac", dir)
	if err := cl.c.Create(ctx, vs); err != nil {
		t.Fatal(err)
	}
	job := cl.waitJob(t, ns, vs.Name)

	// The agent, as the account the operator made and bound.
	kc, err := clientcmd.LoadFromFile(cl.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	agent := serviceAccount(ns, job.Spec.Template.Spec.ServiceAccountName)
	for _, ai := range kc.AuthInfos {
		ai.Impersonate = agent.UserName
		ai.ImpersonateGroups = agent.Groups
	}
	agentConfig := filepath.Join(t.TempDir(), "agent.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, agentConfig); err != nil {
		t.Fatal(err)
	}
	if code, stderr := cl.runAgentWith(t, agentConfig, nil, ns, vs.Name, job.Name); code != 0 {
		t.Fatalf("agent as %s: exit %d: %s", agent.UserName, code, stderr)
	}
	cl.finishJob(t, job, true)
	got := cl.waitPhase(t, ns, vs.Name, v1beta1.VirusScanPhaseCompletedPositive)
	if len(got.Status.ScanResults) != 1 {
		t.Errorf("scanResults: got %+v, want the EICAR file", got.Status.ScanResults)
	}

	// And no more than that: the agent cannot change the spec.
	agentCfg := rest.CopyConfig(cl.cfg)
	agentCfg.Impersonate = agent
	ac, err := client.New(agentCfg, client.Options{Scheme: cl.c.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	got.Spec.Targets[0].SubPath = "elsewhere"
	if err := ac.Update(ctx, got); !apierrors.IsForbidden(err) {
		t.Errorf("agent updating the spec: got %v, want Forbidden", err)
	}

	// Nor report for another scan: a scan pod taken over by a file it
	// scanned cannot mark another VirusScan clean.
	other := hostPathScan(ns, "other", dir)
	if err := cl.c.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	cl.waitJob(t, ns, other.Name)
	forged := []byte(`{"status":{"scanResults":[],"scanErrors":[],"report":{"job":"x","generation":1,"reportedAt":"2026-01-01T00:00:00Z","scannedFiles":0,"infectedFiles":0,"failedFiles":0}}}`)
	if err := ac.Status().Patch(ctx, other, client.RawPatch(types.MergePatchType, forged)); !apierrors.IsForbidden(err) {
		t.Errorf("agent of %s writing the report of %s: got %v, want Forbidden", vs.Name, other.Name, err)
	}
	if err := ac.Get(ctx, client.ObjectKeyFromObject(other), &v1beta1.VirusScan{}); !apierrors.IsForbidden(err) {
		t.Errorf("agent of %s reading %s: got %v, want Forbidden", vs.Name, other.Name, err)
	}
}

// Run returns when its context ends and leaves nothing running behind
// (idle HTTP connections aside, which the transport closes on its own).
func TestOperatorStopsCleanly(t *testing.T) {
	cl := newCluster(t)
	ns := cl.namespace(t)
	ignore := goleak.IgnoreCurrent()
	stop := cl.startOperator(t, ns, nil)
	vs := hostPathScan(ns, "leak", "/srv")
	if err := cl.c.Create(context.Background(), vs); err != nil {
		t.Fatal(err)
	}
	cl.waitJob(t, ns, vs.Name)
	stop()
	goleak.VerifyNone(t, ignore,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// With a lazaret server, the Jobs' files go through its pipeline: the
// verdicts are the server's, and stored there.
func TestVirusScanThroughServer(t *testing.T) {
	cl := newCluster(t)
	ctx := context.Background()
	ns := cl.namespace(t)
	cl.startOperator(t, ns, nil)

	cfg := config.Default()
	cfg.Listen, cfg.DataDir, cfg.Engines = "127.0.0.1:0", t.TempDir(), config.DefaultEngines()
	app, err := server.Start(ctx, cfg, server.Options{HTTP: true, Workers: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		app.Shutdown(ctx)
	})
	base := "http://" + app.Addr()

	dir := scanDir(t, true)
	vs := hostPathScan(ns, "via-server", dir)
	if err := cl.c.Create(ctx, vs); err != nil {
		t.Fatal(err)
	}
	job := cl.waitJob(t, ns, vs.Name)
	if code, stderr := cl.runAgentWith(t, cl.kubeconfig, map[string]string{"LAZARET_SERVER": base}, ns, vs.Name, job.Name); code != 0 {
		t.Fatalf("agent: exit %d: %s", code, stderr)
	}
	cl.finishJob(t, job, true)
	got := cl.waitPhase(t, ns, vs.Name, v1beta1.VirusScanPhaseCompletedPositive)
	want := []v1beta1.VirusScanResultItem{{FilePath: filepath.Join(dir, "sub/eicar.com"), MatchingSignature: testenv.EICARSignature}}
	if !slices.Equal(got.Status.ScanResults, want) || got.Status.Report.ScannedFiles != 3 {
		t.Errorf("status: got %+v, %+v; want %+v of 3 files", got.Status.ScanResults, got.Status.Report, want)
	}
	// The server stored the verdict of the EICAR file's content.
	resp, err := http.Get(base + "/v1/verdicts/" + sha256hex(testenv.EICAR))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var stored struct{ Verdict string }
	if err := json.NewDecoder(resp.Body).Decode(&stored); err != nil || resp.StatusCode != http.StatusOK || stored.Verdict != "infected" {
		t.Errorf("server's verdict for EICAR: got %d %+v (%v), want 200 infected", resp.StatusCode, stored, err)
	}

	// The server down: every file is an error, the scan Failed.
	vs2 := hostPathScan(ns, "server-down", dir)
	if err := cl.c.Create(ctx, vs2); err != nil {
		t.Fatal(err)
	}
	job2 := cl.waitJob(t, ns, vs2.Name)
	if code, stderr := cl.runAgentWith(t, cl.kubeconfig, map[string]string{"LAZARET_SERVER": "http://127.0.0.1:1"}, ns, vs2.Name, job2.Name); code != 0 {
		t.Fatalf("agent: exit %d: %s", code, stderr)
	}
	got2 := cl.waitPhase(t, ns, vs2.Name, v1beta1.VirusScanPhaseFailed)
	if r := got2.Status.Report; r.FailedFiles != 3 || r.InfectedFiles != 0 || len(got2.Status.ScanErrors) != 3 || got2.Status.ScanErrors[0].Reason != "engine_error" {
		t.Errorf("server down: got report %+v, errors %+v; want 3 engine_error failures", r, got2.Status.ScanErrors)
	}
}

func sha256hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// waitWarning waits up to d for a warning event with reason about the
// object named name in ns.
func (cl *cluster) waitWarning(t *testing.T, d time.Duration, ns, name, reason string) {
	t.Helper()
	eventually(t, d, "a warning event "+reason+" on "+name, func() error {
		var evs eventsv1.EventList
		if err := cl.c.List(context.Background(), &evs, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == name && e.Reason == reason && e.Type == corev1.EventTypeWarning {
				return nil
			}
		}
		return fmt.Errorf("%d events, none %s on %s", len(evs.Items), reason, name)
	})
}
