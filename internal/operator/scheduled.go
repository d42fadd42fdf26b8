package operator

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/lazaret/lazaret/internal/operator/v1beta1"
)

// maxMissedRuns bounds one walk over schedule times, a guard against a
// schedule that fires far more often than any window dueTime tries.
const maxMissedRuns = 100_000

// scheduledReconciler creates a VirusScan from a ScheduledVirusScan's
// template at each schedule time and deletes the completed ones beyond
// the history size. Each VirusScan's name is derived from its schedule
// time, so a restarted operator that runs the same time again finds the
// VirusScan there instead of making a second one.
type scheduledReconciler struct {
	client client.Client
	// api reads past the cache, for the VirusScan a create was refused
	// because it exists: the cache may not hold it yet.
	api    client.Reader
	events events.EventRecorder
	opts   Options
}

// Reconcile implements reconcile.Reconciler.
func (r *scheduledReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var svs v1beta1.ScheduledVirusScan
	if err := r.client.Get(ctx, req.NamespacedName, &svs); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if svs.DeletionTimestamp != nil {
		return reconcile.Result{}, nil
	}
	sched, err := cron.ParseStandard(svs.Spec.Schedule)
	if err != nil {
		// The CRD's pattern lets through what only the parser can
		// refuse (a minute of 61, say). A spec change brings us back.
		r.opts.Logger.Warn("bad schedule", "namespace", svs.Namespace, "scheduledvirusscan", svs.Name, "schedule", svs.Spec.Schedule, "err", err)
		r.events.Eventf(&svs, nil, corev1.EventTypeWarning, "InvalidSchedule", "Schedule", "schedule %q: %v", svs.Spec.Schedule, err)
		return reconcile.Result{}, nil
	}
	now := r.opts.Now().UTC()
	since := svs.CreationTimestamp.UTC()
	if t := svs.Status.LastScheduledTime; t != nil {
		since = t.UTC()
	}
	due, next := dueTime(sched, since, now)
	if !due.IsZero() {
		if err := r.createScan(ctx, &svs, due); err != nil {
			return reconcile.Result{}, err
		}
	}
	if err := r.prune(ctx, &svs); err != nil {
		return reconcile.Result{}, err
	}
	if next.IsZero() {
		return reconcile.Result{}, nil // a schedule with no more times
	}
	// A little past the time, so that the next run finds it due.
	return reconcile.Result{RequeueAfter: max(next.Sub(now), 0) + 10*time.Millisecond}, nil
}

// dueTime returns the latest schedule time after since and not after now
// (zero if none) and the first schedule time after now (zero if none).
// Only the latest missed time is run, as a CronJob does. It walks from a
// point shortly before now when that is after since, so that a fast
// schedule after a long outage ("@every 1s" after a week) takes a few
// steps rather than a step per missed time.
//
// "@every D" schedules count from since (ConstantDelaySchedule's Next is
// the time given plus D), so their times are computed from since alone:
// walking them from a point before now would make up a time that depends
// on when the operator looked, and a second look (a restart, another
// replica) would make up another, and so a second VirusScan.
func dueTime(sched cron.Schedule, since, now time.Time) (due, next time.Time) {
	if every, ok := sched.(cron.ConstantDelaySchedule); ok && every.Delay > 0 {
		first := every.Next(since)
		if first.After(now) {
			return time.Time{}, first
		}
		n := now.Sub(first) / every.Delay
		due = first.Add(n * every.Delay)
		return due, due.Add(every.Delay)
	}
	for _, back := range []time.Duration{time.Minute, time.Hour, 24 * time.Hour, 31 * 24 * time.Hour, 366 * 24 * time.Hour} {
		from := now.Add(-back)
		if !from.After(since) {
			break
		}
		if due, next := walkSchedule(sched, from, now); !due.IsZero() {
			return due, next
		}
	}
	return walkSchedule(sched, since, now)
}

// walkSchedule returns the last schedule time in (from, now] and the one
// after it.
func walkSchedule(sched cron.Schedule, from, now time.Time) (due, next time.Time) {
	t := sched.Next(from)
	for i := 0; !t.IsZero() && !t.After(now) && i < maxMissedRuns; i++ {
		due = t
		t = sched.Next(t)
	}
	return due, t
}

// ScanName is the name of the VirusScan a ScheduledVirusScan creates for
// schedule time t.
func ScanName(svsName string, t time.Time) string {
	suffix := "-" + strconv.FormatInt(t.Unix(), 10)
	if max := 253 - len(suffix); len(svsName) > max {
		svsName = strings.TrimRight(svsName[:max], "-.")
	}
	return svsName + suffix
}

func (r *scheduledReconciler) createScan(ctx context.Context, svs *v1beta1.ScheduledVirusScan, due time.Time) error {
	tpl := svs.Spec.Template
	vs := &v1beta1.VirusScan{
		ObjectMeta: metav1.ObjectMeta{
			Name:        ScanName(svs.Name, due),
			Namespace:   svs.Namespace,
			Labels:      maps.Clone(tpl.Labels),
			Annotations: maps.Clone(tpl.Annotations),
		},
		Spec: *tpl.Spec.DeepCopy(),
	}
	if vs.Labels == nil {
		vs.Labels = map[string]string{}
	}
	vs.Labels[LabelScheduledBy] = NameLabel(svs.Name)
	if vs.Annotations == nil {
		vs.Annotations = map[string]string{}
	}
	vs.Annotations[AnnotationScheduledAt] = due.Format(time.RFC3339)
	if err := controllerutil.SetControllerReference(svs, vs, r.client.Scheme()); err != nil {
		return fmt.Errorf("scheduledvirusscan %s/%s: owner: %w", svs.Namespace, svs.Name, err)
	}
	switch err := r.client.Create(ctx, vs); {
	case apierrors.IsAlreadyExists(err):
		// This time was run before a restart: nothing to make, but the
		// status refers to the VirusScan there, UID included, and only
		// if it is this schedule's.
		key := client.ObjectKeyFromObject(vs)
		vs = &v1beta1.VirusScan{}
		if err := r.api.Get(ctx, key, vs); err != nil {
			// Gone again (pruned, deleted) or unreadable: the retry
			// makes it or finds it.
			return fmt.Errorf("scheduledvirusscan %s/%s: read virusscan %s: %w", svs.Namespace, svs.Name, key.Name, err)
		}
		if !metav1.IsControlledBy(vs, svs) {
			// Someone else's VirusScan has this time's name: it is
			// neither claimed nor recorded, and this time is skipped
			// (status unchanged; the next time has another name).
			r.opts.Logger.Warn("virusscan name taken", "namespace", svs.Namespace, "scheduledvirusscan", svs.Name, "virusscan", vs.Name, "time", due)
			r.events.Eventf(svs, vs, corev1.EventTypeWarning, "ScanConflict", "CreateVirusScan",
				"VirusScan %s exists and is not controlled by this ScheduledVirusScan; schedule time %s skipped", vs.Name, due.Format(time.RFC3339))
			return nil
		}
	case err != nil:
		return fmt.Errorf("scheduledvirusscan %s/%s: create virusscan: %w", svs.Namespace, svs.Name, err)
	default:
		r.opts.Logger.Info("virusscan scheduled", "namespace", svs.Namespace, "scheduledvirusscan", svs.Name, "virusscan", vs.Name, "time", due)
		r.events.Eventf(svs, vs, corev1.EventTypeNormal, "Scheduled", "CreateVirusScan", "created VirusScan %s", vs.Name)
	}
	before := svs.DeepCopy()
	svs.Status.LastScheduledScan = &corev1.ObjectReference{
		APIVersion: v1beta1.GroupVersion.String(), Kind: "VirusScan", Namespace: vs.Namespace, Name: vs.Name, UID: vs.UID,
	}
	svs.Status.LastScheduledTime = &metav1.Time{Time: due}
	if err := r.client.Status().Patch(ctx, svs, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("scheduledvirusscan %s/%s: status: %w", svs.Namespace, svs.Name, err)
	}
	return nil
}

// prune deletes the completed VirusScans of this schedule beyond its
// history size, oldest first. Unfinished scans are never deleted (nor
// counted), as in KubeAV.
func (r *scheduledReconciler) prune(ctx context.Context, svs *v1beta1.ScheduledVirusScan) error {
	var list v1beta1.VirusScanList
	if err := r.client.List(ctx, &list, client.InNamespace(svs.Namespace), client.MatchingLabels{LabelScheduledBy: NameLabel(svs.Name)}); err != nil {
		return fmt.Errorf("scheduledvirusscan %s/%s: list: %w", svs.Namespace, svs.Name, err)
	}
	keep := DefaultHistorySize
	if svs.Spec.HistorySize != nil {
		keep = int(*svs.Spec.HistorySize)
	}
	var done []*v1beta1.VirusScan
	for i := range list.Items {
		vs := &list.Items[i]
		if metav1.IsControlledBy(vs, svs) && vs.Status.Finished() && vs.DeletionTimestamp == nil {
			done = append(done, vs)
		}
	}
	if len(done) <= keep {
		return nil
	}
	sort.Slice(done, func(i, j int) bool { return scheduledAt(done[i]).After(scheduledAt(done[j])) })
	for _, vs := range done[keep:] {
		// Background propagation: the scan's Job goes with it.
		if err := r.client.Delete(ctx, vs, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("scheduledvirusscan %s/%s: delete %s: %w", svs.Namespace, svs.Name, vs.Name, err)
		}
		r.opts.Logger.Info("virusscan pruned", "namespace", svs.Namespace, "scheduledvirusscan", svs.Name, "virusscan", vs.Name)
	}
	return nil
}

// scheduledAt is the schedule time a VirusScan was created for, or its
// creation time.
func scheduledAt(vs *v1beta1.VirusScan) time.Time {
	if t, err := time.Parse(time.RFC3339, vs.Annotations[AnnotationScheduledAt]); err == nil {
		return t
	}
	return vs.CreationTimestamp.Time
}
