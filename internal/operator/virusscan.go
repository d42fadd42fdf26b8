package operator

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/lazaret/lazaret/internal/operator/v1beta1"
)

// virusScanReconciler drives a VirusScan from creation to a final phase:
// it makes the Job, follows it, and turns the agent's report into the
// phase, conditions and summary. Everything it decides follows from what
// is stored in the API server (the VirusScan, its Job with a name derived
// from the VirusScan), so an operator restarted at any point carries on
// where the last one stopped.
type virusScanReconciler struct {
	client client.Client
	// api reads past the cache, for the one read whose order matters: a
	// Job's end seen before the report that preceded it.
	api    client.Reader
	events events.EventRecorder
	opts   Options
}

// Reconcile implements reconcile.Reconciler.
func (r *virusScanReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var vs v1beta1.VirusScan
	if err := r.client.Get(ctx, req.NamespacedName, &vs); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if vs.DeletionTimestamp != nil || vs.Status.Finished() {
		// A finished scan is never run again; delete and re-create
		// the VirusScan for a new one.
		return reconcile.Result{}, nil
	}
	before := vs.DeepCopy()
	res, err := r.reconcile(ctx, &vs)
	if !equality.Semantic.DeepEqual(before.Status, vs.Status) {
		// A merge patch of the fields that changed: the agent's
		// report fields are never in it, so neither writer undoes the
		// other's work.
		if perr := r.client.Status().Patch(ctx, &vs, client.MergeFrom(before)); perr != nil && err == nil {
			err = fmt.Errorf("virusscan %s: status: %w", req.NamespacedName, perr)
		}
	}
	return res, err
}

func (r *virusScanReconciler) reconcile(ctx context.Context, vs *v1beta1.VirusScan) (reconcile.Result, error) {
	now := metav1.NewTime(r.opts.Now())
	if vs.Status.Report != nil {
		// The agent reports once, after it scanned every file: the
		// scan is over whatever the Job's state.
		r.finishFromReport(vs, now)
		return reconcile.Result{}, nil
	}
	if err := validateSpec(&vs.Spec); err != nil {
		r.finish(vs, now, v1beta1.VirusScanPhaseFailed, corev1.ConditionUnknown, "InvalidSpec", err.Error())
		return reconcile.Result{}, nil
	}
	if vs.Status.Phase == v1beta1.VirusScanPhaseUnspecified {
		vs.Status.Phase = v1beta1.VirusScanPhasePending
		vs.Status.Summary = "Pending"
	}

	name := JobName(vs)
	var job batchv1.Job
	err := r.client.Get(ctx, client.ObjectKey{Namespace: vs.Namespace, Name: name}, &job)
	switch {
	case apierrors.IsNotFound(err):
		return r.createJob(ctx, vs, now)
	case err != nil:
		return reconcile.Result{}, fmt.Errorf("virusscan %s/%s: job: %w", vs.Namespace, vs.Name, err)
	}
	if !metav1.IsControlledBy(&job, vs) {
		r.finish(vs, now, v1beta1.VirusScanPhaseFailed, corev1.ConditionUnknown, "JobConflict",
			fmt.Sprintf("job %s exists and belongs to something else", name))
		return reconcile.Result{}, nil
	}
	r.scheduled(vs, &job, now)
	if g := job.Annotations[AnnotationGeneration]; g != strconv.FormatInt(vs.Generation, 10) {
		// The Job mounts the volumes of an earlier spec: what it scans
		// is not what the VirusScan asks for now.
		r.finish(vs, now, v1beta1.VirusScanPhaseFailed, corev1.ConditionUnknown, "SpecChanged",
			fmt.Sprintf("spec changed (generation %d) after scan job %s was made from generation %s; re-create the VirusScan", vs.Generation, name, g))
		return reconcile.Result{}, nil
	}

	if c := jobCondition(&job, batchv1.JobFailed); c != nil {
		// A Job fails only when the agent could not scan or report.
		// Re-read past the cache in case a report made it anyway.
		if done, err := r.freshReport(ctx, vs, now); done || err != nil {
			return reconcile.Result{}, err
		}
		reason, msg := "JobFailed", fmt.Sprintf("scan job %s failed: %s: %s", name, c.Reason, c.Message)
		if c.Reason == batchv1.JobReasonDeadlineExceeded {
			// A hung scan, or one too big for the operator's
			// --active-deadline: stopped, its files not all scanned.
			reason, msg = "DeadlineExceeded", fmt.Sprintf("scan job %s ran past its deadline%s (lazaret-operator --active-deadline) and was stopped", name, jobDeadline(&job))
		}
		r.finish(vs, now, v1beta1.VirusScanPhaseFailed, corev1.ConditionUnknown, reason, msg)
		r.events.Eventf(vs, &job, corev1.EventTypeWarning, "ScanFailed", "Scan", "scan job %s failed: %s", name, c.Reason)
		return reconcile.Result{}, nil
	}
	if c := jobCondition(&job, batchv1.JobComplete); c != nil {
		if done, err := r.freshReport(ctx, vs, now); done || err != nil {
			return reconcile.Result{}, err
		}
		// The report is written before the agent exits, so it is on
		// its way to the cache; past the grace period it is lost.
		waited := now.Sub(c.LastTransitionTime.Time)
		if waited < r.opts.ReportGrace {
			return reconcile.Result{RequeueAfter: min(r.opts.ReportGrace-waited, 10*time.Second)}, nil
		}
		r.finish(vs, now, v1beta1.VirusScanPhaseFailed, corev1.ConditionUnknown, "NoReport",
			fmt.Sprintf("scan job %s completed without reporting results", name))
		return reconcile.Result{}, nil
	}
	if job.Status.Active > 0 && vs.Status.Phase != v1beta1.VirusScanPhaseRunning {
		vs.Status.Phase = v1beta1.VirusScanPhaseRunning
		vs.Status.Summary = "Running"
	}
	return reconcile.Result{}, nil
}

// createJob makes the VirusScan's Job (and the agent's account when the
// VirusScan uses the default one).
func (r *virusScanReconciler) createJob(ctx context.Context, vs *v1beta1.VirusScan, now metav1.Time) (reconcile.Result, error) {
	switch {
	case vs.Spec.ServiceAccountName != "":
	case r.opts.ServiceAccount != "":
		if err := r.ensureAgentAccount(ctx, vs.Namespace); err != nil {
			return reconcile.Result{}, err
		}
	default:
		if err := r.ensureScanAccount(ctx, vs); err != nil {
			return reconcile.Result{}, err
		}
	}
	job := buildJob(vs, &r.opts)
	if err := controllerutil.SetControllerReference(vs, job, r.client.Scheme()); err != nil {
		return reconcile.Result{}, fmt.Errorf("virusscan %s/%s: job owner: %w", vs.Namespace, vs.Name, err)
	}
	err := r.client.Create(ctx, job)
	switch {
	case apierrors.IsAlreadyExists(err):
		// Made by an earlier run whose cache had not caught up; the
		// Job's event brings us back.
		return reconcile.Result{RequeueAfter: time.Second}, nil
	case apierrors.IsInvalid(err) || apierrors.IsForbidden(err):
		// The spec makes a Job the API server refuses (or may not be
		// made here): retrying will not help.
		r.finish(vs, now, v1beta1.VirusScanPhaseFailed, corev1.ConditionUnknown, "JobRejected", err.Error())
		return reconcile.Result{}, nil
	case err != nil:
		return reconcile.Result{}, fmt.Errorf("virusscan %s/%s: create job: %w", vs.Namespace, vs.Name, err)
	}
	r.opts.Logger.Info("scan job created", "namespace", vs.Namespace, "virusscan", vs.Name, "job", job.Name)
	r.events.Eventf(vs, job, corev1.EventTypeNormal, "Scheduled", "CreateJob", "created scan job %s", job.Name)
	r.scheduled(vs, job, now)
	return reconcile.Result{}, nil
}

// ensureAgentAccount creates the default service account and its role
// binding in a namespace unless they exist.
func (r *virusScanReconciler) ensureAgentAccount(ctx context.Context, ns string) error {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
		Name: r.opts.ServiceAccount, Namespace: ns, Labels: map[string]string{LabelManagedBy: ManagedBy},
	}}
	if err := r.client.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("agent service account %s/%s: %w", ns, sa.Name, err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: r.opts.ServiceAccount, Namespace: ns, Labels: map[string]string{LabelManagedBy: ManagedBy}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: r.opts.AgentRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: r.opts.ServiceAccount, Namespace: ns}},
	}
	if err := r.client.Create(ctx, rb); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("agent role binding %s/%s: %w", ns, rb.Name, err)
	}
	return nil
}

// ensureScanAccount creates the scan's own service account, a Role that
// allows reading this one VirusScan and patching its status, and the
// binding of the two, unless they exist. All three are owned by the
// VirusScan and go with it.
func (r *virusScanReconciler) ensureScanAccount(ctx context.Context, vs *v1beta1.VirusScan) error {
	name := JobName(vs)
	meta := func() metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: vs.Namespace, Labels: map[string]string{
			LabelManagedBy: ManagedBy, LabelVirusScan: NameLabel(vs.Name),
		}}
	}
	sa := &corev1.ServiceAccount{ObjectMeta: meta()}
	role := &rbacv1.Role{
		ObjectMeta: meta(),
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{v1beta1.GroupVersion.Group}, Resources: []string{"virusscans"}, ResourceNames: []string{vs.Name}, Verbs: []string{"get"}},
			{APIGroups: []string{v1beta1.GroupVersion.Group}, Resources: []string{"virusscans/status"}, ResourceNames: []string{vs.Name}, Verbs: []string{"patch"}},
		},
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: meta(),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: vs.Namespace}},
	}
	for _, obj := range []client.Object{sa, role, rb} {
		if err := controllerutil.SetControllerReference(vs, obj, r.client.Scheme()); err != nil {
			return fmt.Errorf("virusscan %s/%s: agent account owner: %w", vs.Namespace, vs.Name, err)
		}
		if err := r.client.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("virusscan %s/%s: agent account: %T %s: %w", vs.Namespace, vs.Name, obj, name, err)
		}
	}
	return nil
}

// freshReport reads the VirusScan from the API server and finishes it
// from its report if there is one.
func (r *virusScanReconciler) freshReport(ctx context.Context, vs *v1beta1.VirusScan, now metav1.Time) (bool, error) {
	var fresh v1beta1.VirusScan
	if err := r.api.Get(ctx, client.ObjectKeyFromObject(vs), &fresh); err != nil {
		return false, fmt.Errorf("virusscan %s/%s: read report: %w", vs.Namespace, vs.Name, err)
	}
	if fresh.Status.Report == nil {
		return false, nil
	}
	vs.Status.Report = fresh.Status.Report
	vs.Status.ScanResults = fresh.Status.ScanResults
	vs.Status.ScanErrors = fresh.Status.ScanErrors
	r.finishFromReport(vs, now)
	return true, nil
}

// scheduled records the Job and the Scheduled condition.
func (r *virusScanReconciler) scheduled(vs *v1beta1.VirusScan, job *batchv1.Job, now metav1.Time) {
	vs.Status.Job = &corev1.ObjectReference{
		APIVersion: "batch/v1", Kind: "Job", Namespace: job.Namespace, Name: job.Name, UID: job.UID,
	}
	setCondition(&vs.Status, v1beta1.VirusScanConditionTypeScheduled, corev1.ConditionTrue, "JobCreated", "scan job "+job.Name, now)
}

// jobDeadline is " of D" for a Job with an active deadline of D, else "".
func jobDeadline(job *batchv1.Job) string {
	if s := job.Spec.ActiveDeadlineSeconds; s != nil {
		return " of " + (time.Duration(*s) * time.Second).String()
	}
	return ""
}

// finishFromReport sets the final phase from the agent's report.
// Infected wins; a scan with files that could not be scanned and none
// infected is Failed, never CompletedNegative.
func (r *virusScanReconciler) finishFromReport(vs *v1beta1.VirusScan, now metav1.Time) {
	rep := vs.Status.Report
	if rep.Generation != vs.Generation {
		r.finish(vs, now, v1beta1.VirusScanPhaseFailed, corev1.ConditionUnknown, "SpecChanged",
			fmt.Sprintf("the report is of generation %d of the spec, not of the current %d; re-create the VirusScan", rep.Generation, vs.Generation))
		return
	}
	counts := fmt.Sprintf("%d files scanned, %d infected, %d not scanned", rep.ScannedFiles, rep.InfectedFiles, rep.FailedFiles)
	switch {
	case rep.InfectedFiles > 0:
		summary := fmt.Sprintf("Completed (%d infected files)", rep.InfectedFiles)
		if rep.FailedFiles > 0 {
			summary = fmt.Sprintf("Completed (%d infected files, %d files not scanned)", rep.InfectedFiles, rep.FailedFiles)
		}
		r.finish(vs, now, v1beta1.VirusScanPhaseCompletedPositive, corev1.ConditionTrue, "InfectedFilesFound", counts)
		vs.Status.Summary = summary
		r.events.Eventf(vs, nil, corev1.EventTypeWarning, "InfectedFilesFound", "Scan", "%s", counts)
	case rep.FailedFiles > 0:
		r.finish(vs, now, v1beta1.VirusScanPhaseFailed, corev1.ConditionUnknown, "FilesNotScanned", counts)
		vs.Status.Summary = fmt.Sprintf("Failed (%d files not scanned)", rep.FailedFiles)
		r.events.Eventf(vs, nil, corev1.EventTypeWarning, "FilesNotScanned", "Scan", "%s", counts)
	default:
		r.finish(vs, now, v1beta1.VirusScanPhaseCompletedNegative, corev1.ConditionFalse, "NoInfectedFiles", counts)
		vs.Status.Summary = "Completed (0 infected files)"
	}
	r.opts.Logger.Info("scan done", "namespace", vs.Namespace, "virusscan", vs.Name, "phase", vs.Status.Phase,
		"scanned", rep.ScannedFiles, "infected", rep.InfectedFiles, "failed", rep.FailedFiles)
}

// finish sets a final phase: Completed becomes True, Positive takes
// positive. The summary is the phase and message unless the caller sets
// a better one.
func (r *virusScanReconciler) finish(vs *v1beta1.VirusScan, now metav1.Time, phase v1beta1.VirusScanPhase, positive corev1.ConditionStatus, reason, msg string) {
	vs.Status.Phase = phase
	vs.Status.Summary = string(phase)
	if phase == v1beta1.VirusScanPhaseFailed {
		vs.Status.Summary = "Failed (" + firstLine(msg) + ")"
	}
	setCondition(&vs.Status, v1beta1.VirusScanConditionTypeCompleted, corev1.ConditionTrue, reason, msg, now)
	setCondition(&vs.Status, v1beta1.VirusScanConditionTypePositive, positive, reason, msg, now)
	if phase == v1beta1.VirusScanPhaseFailed && reason != "FilesNotScanned" {
		r.opts.Logger.Warn("scan failed", "namespace", vs.Namespace, "virusscan", vs.Name, "reason", reason, "message", msg)
	}
}

// setCondition sets a condition, keeping its transition time when the
// status does not change.
func setCondition(st *v1beta1.VirusScanStatus, t v1beta1.VirusScanConditionType, status corev1.ConditionStatus, reason, msg string, now metav1.Time) {
	if st.Conditions == nil {
		st.Conditions = map[v1beta1.VirusScanConditionType]v1beta1.VirusScanCondition{}
	}
	c := v1beta1.VirusScanCondition{Type: t, Status: status, Reason: reason, Message: msg, LastTransitionTime: now}
	if old, ok := st.Conditions[t]; ok && old.Status == status {
		c.LastTransitionTime = old.LastTransitionTime
	}
	st.Conditions[t] = c
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
