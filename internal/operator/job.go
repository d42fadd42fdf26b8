package operator

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/lazaret/lazaret/internal/operator/v1beta1"
)

// jobBackoffLimit is how many times a scan pod is retried. The agent
// exits non-zero only when it could not scan or report at all, so a few
// retries cover a node going away without hiding a broken setup.
const jobBackoffLimit = 2

// TargetMountPath is where target i of a VirusScan is mounted in its Job,
// and so the prefix of the paths in its results: the target's mountPath,
// else KubeAV's /scan/scan-target-N.
func TargetMountPath(i int, t v1beta1.VirusScanTargetSpec) string {
	if t.MountPath != "" {
		return path.Clean(t.MountPath)
	}
	return fmt.Sprintf("/scan/scan-target-%d", i)
}

// JobName is the name of a VirusScan's Job. It is derived from the
// VirusScan alone, so that an operator that restarts between creating
// the Job and recording it finds the same Job instead of making a second
// one; the UID part keeps a VirusScan re-created under the same name from
// adopting the Job of its predecessor. Job names are at most 63
// characters (they become a label value).
func JobName(vs *v1beta1.VirusScan) string {
	uid := strings.ReplaceAll(string(vs.UID), "-", "")
	if len(uid) > 8 {
		uid = uid[:8]
	}
	name := vs.Name
	if len(name) > 44 {
		name = strings.TrimRight(name[:44], "-.")
	}
	return name + "-scan-" + uid
}

// validateSpec checks what the CRD's schema cannot: that the exclusion
// patterns compile (as the agent compiles them).
func validateSpec(spec *v1beta1.VirusScanSpec) error {
	_, err := agentTargets(spec)
	return err
}

// defaultResources are the scan container's when the VirusScan sets none:
// the agent streams files to the scanner, so memory stays small.
func defaultResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("100m"),
			corev1.ResourceMemory: resource.MustParse("128Mi"),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceMemory: resource.MustParse("512Mi"),
		},
	}
}

// buildJob returns the Job that scans vs. The caller sets the owner.
func buildJob(vs *v1beta1.VirusScan, opts *Options) *batchv1.Job {
	name := JobName(vs)
	lbl := map[string]string{
		LabelManagedBy:                ManagedBy,
		LabelVirusScan:                NameLabel(vs.Name),
		"app.kubernetes.io/name":      "lazaret",
		"app.kubernetes.io/component": "scan",
	}
	volumes := []corev1.Volume{{
		// The scanner spools samples under TMPDIR; the root file
		// system is read-only.
		Name:         "tmp",
		VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}},
	}}
	mounts := []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}}
	for i, t := range vs.Spec.Targets {
		vol := fmt.Sprintf("scan-target-%d", i)
		volumes = append(volumes, corev1.Volume{Name: vol, VolumeSource: corev1.VolumeSource(t.Volume)})
		mounts = append(mounts, corev1.VolumeMount{
			Name:      vol,
			MountPath: TargetMountPath(i, t),
			SubPath:   t.SubPath,
			ReadOnly:  true,
		})
	}
	env := []corev1.EnvVar{{Name: "TMPDIR", Value: "/tmp"}}
	if opts.Server != "" {
		env = append(env, corev1.EnvVar{Name: "LAZARET_SERVER", Value: opts.Server})
	}
	if opts.ServerTokenSecret != "" {
		env = append(env, corev1.EnvVar{Name: "LAZARET_TOKEN", ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: opts.ServerTokenSecret},
				Key:                  "token",
			},
		}})
	}
	res := vs.Spec.Resources
	if len(res.Requests) == 0 && len(res.Limits) == 0 && len(res.Claims) == 0 {
		res = defaultResources()
	}
	sa := agentAccount(vs, opts)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: vs.Namespace, Labels: lbl,
			Annotations: map[string]string{AnnotationGeneration: strconv.FormatInt(vs.Generation, 10)}},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](jobBackoffLimit),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbl},
				Spec: corev1.PodSpec{
					RestartPolicy:                corev1.RestartPolicyNever,
					ServiceAccountName:           sa,
					AutomountServiceAccountToken: ptr.To(true), // the agent reports through the API
					Volumes:                      volumes,
					Containers: []corev1.Container{{
						Name:            "scan",
						Image:           opts.Image,
						ImagePullPolicy: opts.ImagePullPolicy,
						// Arguments of the image's entry point, lazaret,
						// whose `lazaret operator` execs the
						// lazaret-operator beside it: the Job names no
						// path inside the image.
						// --generation: the agent scans only the spec
						// whose volumes the Job mounts.
						Args: []string{"operator", "agent", "--virusscan", vs.Namespace + "/" + vs.Name, "--job", name,
							"--generation", strconv.FormatInt(vs.Generation, 10)},
						Env:          env,
						VolumeMounts: mounts,
						Resources:    res,
						// Root with only DAC_OVERRIDE: enough to read
						// every file of the volume whatever its owner
						// (a non-root scanner would report files it
						// cannot read as errors), and within the
						// "baseline" Pod Security level. The targets
						// and the root file system are read-only.
						SecurityContext: &corev1.SecurityContext{
							RunAsUser:                ptr.To[int64](0),
							RunAsNonRoot:             ptr.To(false),
							AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
							Capabilities: &corev1.Capabilities{
								Drop: []corev1.Capability{"ALL"},
								Add:  []corev1.Capability{"DAC_OVERRIDE"},
							},
						},
					}},
				},
			},
		},
	}
	if opts.ActiveDeadline > 0 {
		// Rounded up: a bound under a second is one second, never the
		// 0 the API server refuses.
		job.Spec.ActiveDeadlineSeconds = ptr.To(int64((opts.ActiveDeadline + time.Second - 1) / time.Second))
	}
	return job
}

// agentAccount is the service account a VirusScan's Job runs as: the one
// the VirusScan names, else the operator's shared one when configured,
// else the scan's own (named as its Job).
func agentAccount(vs *v1beta1.VirusScan, opts *Options) string {
	switch {
	case vs.Spec.ServiceAccountName != "":
		return vs.Spec.ServiceAccountName
	case opts.ServiceAccount != "":
		return opts.ServiceAccount
	}
	return JobName(vs)
}

// jobCondition returns the Job's condition of type t, or nil.
func jobCondition(job *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range job.Status.Conditions {
		c := &job.Status.Conditions[i]
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}
