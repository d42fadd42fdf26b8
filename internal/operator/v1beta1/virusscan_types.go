package v1beta1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ScanEngine names the engine a VirusScan asks for. lazaret scans with the
// engines its pipeline is configured with (clamd first); the field is kept
// so that KubeAV manifests apply unchanged.
// +kubebuilder:validation:Enum=ClamAV
type ScanEngine string

// ScanEngineClamAV is the only engine KubeAV knows, and the default.
const ScanEngineClamAV ScanEngine = "ClamAV"

// VolumeSource is a Kubernetes volume source (corev1.VolumeSource) with
// exactly one kind of volume set, which the CRD checks at admission
// rather than leaving it to the Job's validation later.
// +kubebuilder:validation:Type=object
// +kubebuilder:validation:MinProperties=1
// +kubebuilder:validation:MaxProperties=1
type VolumeSource corev1.VolumeSource

// VirusScanTargetSpec is one volume to scan.
// +kubebuilder:validation:XValidation:rule="!has(self.subPath) || (!self.subPath.startsWith('/') && !self.subPath.split('/').exists(p, p == '..'))",message="subPath must be a relative path inside the volume, without '..'",fieldPath=".subPath"
type VirusScanTargetSpec struct {
	// Volume is any volume source a PodSpec takes (persistentVolumeClaim,
	// hostPath, configMap, ...); it is mounted read-only into the scan job.
	Volume VolumeSource `json:"volume"`

	// SubPath scans only this folder of the volume.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	SubPath string `json:"subPath,omitempty"`

	// MountPath is where the volume is mounted in the scan job, and so the
	// prefix of the file paths in the results. Default
	// /scan/scan-target-N, N being the target's index.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/.+`
	// +kubebuilder:validation:XValidation:rule="!self.split('/').exists(p, p == '..' || p == '.')",message="mountPath must be a clean path, without . or .. parts"
	// +kubebuilder:validation:XValidation:rule="!['etc', 'proc', 'sys', 'dev', 'var', 'run', 'usr', 'bin', 'sbin', 'lib', 'lib64', 'lazaret', 'lazaret-operator'].exists(r, self.split('/')[1] == r)",message="mountPath must not be at or under /etc, /proc, /sys, /dev, /var, /run, /usr, /bin, /sbin, /lib, /lib64 or the scanner's own /lazaret files: a volume there would hide what the scan job runs on"
	MountPath string `json:"mountPath,omitempty"`

	// ExcludeFiles is a list of regular expressions (Go syntax) matched
	// against each file's path; matching files are not scanned.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=1024
	ExcludeFiles []string `json:"excludeFiles,omitempty"`

	// ExcludeDirectories is a list of regular expressions (Go syntax)
	// matched against each folder's path; matching folders are skipped
	// with everything in them.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=1024
	ExcludeDirectories []string `json:"excludeDirectories,omitempty"`
}

// VirusScanSpec defines what a VirusScan scans.
type VirusScanSpec struct {
	// Engine is the engine to scan with; only ClamAV, the default.
	// +optional
	Engine ScanEngine `json:"engine,omitempty"`

	// Resources are the scan container's resource requirements; the
	// operator's defaults when empty.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// Targets are the volumes to scan.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:XValidation:rule="self.all(t, !has(t.mountPath) || self.exists_one(u, has(u.mountPath) && u.mountPath == t.mountPath))",message="every target needs its own mountPath"
	Targets []VirusScanTargetSpec `json:"targets"`

	// ServiceAccountName is the service account the scan job runs as; the
	// operator's default (which may report the results) when empty.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
}

// VirusScanPhase is where a VirusScan is in its life.
type VirusScanPhase string

// The phases, KubeAV's. A scan that found nothing but could not scan
// every file ends Failed, never CompletedNegative: a failure is not clean.
const (
	VirusScanPhaseUnspecified       VirusScanPhase = ""
	VirusScanPhasePending           VirusScanPhase = "Pending"
	VirusScanPhaseRunning           VirusScanPhase = "Running"
	VirusScanPhaseCompletedPositive VirusScanPhase = "CompletedPositive"
	VirusScanPhaseCompletedNegative VirusScanPhase = "CompletedNegative"
	VirusScanPhaseFailed            VirusScanPhase = "Failed"
)

// VirusScanConditionType names a condition; conditions are a map keyed by
// their type, as in KubeAV.
type VirusScanConditionType string

// The condition types.
const (
	// VirusScanConditionTypeScheduled is True once the scan job exists.
	VirusScanConditionTypeScheduled VirusScanConditionType = "Scheduled"
	// VirusScanConditionTypeCompleted is True once the scan ended, in
	// whatever way (see the phase).
	VirusScanConditionTypeCompleted VirusScanConditionType = "Completed"
	// VirusScanConditionTypePositive is True when a file was found
	// infected, False when every file was scanned clean, Unknown when
	// some could not be scanned and none was found infected.
	VirusScanConditionTypePositive VirusScanConditionType = "Positive"
)

// VirusScanCondition is one condition of a VirusScan.
type VirusScanCondition struct {
	// Type is the condition's type, also its key in the map.
	Type VirusScanConditionType `json:"type"`

	// Status is True, False or Unknown.
	Status corev1.ConditionStatus `json:"status"`

	// LastTransitionTime is when the status last changed.
	// +optional
	LastTransitionTime metav1.Time `json:"lastTransitionTime,omitempty"`

	// Reason is a one-word CamelCase reason for the last transition.
	// +optional
	Reason string `json:"reason,omitempty"`

	// Message is a human-readable explanation of the last transition.
	// +optional
	Message string `json:"message,omitempty"`
}

// VirusScanResultItem is one infected file.
type VirusScanResultItem struct {
	// FilePath is the file's path in the scan job (the target's mount
	// path, then the path inside the volume).
	FilePath string `json:"filePath"`
	// MatchingSignature is the first signature that matched.
	MatchingSignature string `json:"matchingSignature"`
}

// VirusScanErrorItem is one file that was neither scanned clean nor found
// infected (lazaret's addition to KubeAV's status).
type VirusScanErrorItem struct {
	// FilePath is the file's path in the scan job.
	FilePath string `json:"filePath"`
	// Verdict is lazaret's verdict: error or skipped.
	Verdict string `json:"verdict"`
	// Reason is lazaret's reason: too_large, encrypted, timeout,
	// engine_error, access_denied, ...
	// +optional
	Reason string `json:"reason,omitempty"`
	// Message is the error, if there is one.
	// +optional
	Message string `json:"message,omitempty"`
}

// VirusScanReport is what the scan job's agent writes when it has scanned
// every file (lazaret's addition). Its presence tells the operator that
// scanResults and scanErrors are complete.
type VirusScanReport struct {
	// Job is the name of the Job whose agent wrote the report.
	Job string `json:"job"`
	// Generation is the VirusScan's metadata.generation whose spec the
	// agent scanned; a report of another generation than the
	// VirusScan's is not a result of its spec, and the scan fails.
	// +optional
	Generation int64 `json:"generation,omitempty"`
	// ReportedAt is when the agent wrote it.
	ReportedAt metav1.Time `json:"reportedAt"`
	// ScannedFiles counts the files scanned, whatever their verdict.
	ScannedFiles int64 `json:"scannedFiles"`
	// InfectedFiles counts the infected files.
	InfectedFiles int64 `json:"infectedFiles"`
	// FailedFiles counts the files with an error or skipped verdict.
	FailedFiles int64 `json:"failedFiles"`
	// Truncated is true when scanResults or scanErrors list only the first
	// files, to keep the object under the API server's size limit; the
	// counts above are always complete.
	// +optional
	Truncated bool `json:"truncated,omitempty"`
}

// VirusScanStatus is the observed state of a VirusScan, KubeAV's shape.
type VirusScanStatus struct {
	// Conditions are keyed by type: Scheduled, Completed, Positive.
	// +optional
	Conditions map[VirusScanConditionType]VirusScanCondition `json:"conditions,omitempty"`

	// Phase is Pending, Running, CompletedPositive, CompletedNegative or
	// Failed.
	// +optional
	Phase VirusScanPhase `json:"phase,omitempty"`

	// Summary is a human-readable summary, such as
	// "Completed (1 infected files)".
	// +optional
	Summary string `json:"summary,omitempty"`

	// Job refers to the scan Job once it was created.
	// +optional
	Job *corev1.ObjectReference `json:"job,omitempty"`

	// ScanResults lists the infected files.
	// +optional
	ScanResults []VirusScanResultItem `json:"scanResults,omitempty"`

	// ScanErrors lists the files that could not be scanned.
	// +optional
	ScanErrors []VirusScanErrorItem `json:"scanErrors,omitempty"`

	// Report is written by the scan job's agent when it is done.
	// +optional
	Report *VirusScanReport `json:"report,omitempty"`
}

// Condition returns the status of a condition, Unknown when it is not set.
func (in *VirusScanStatus) Condition(t VirusScanConditionType) corev1.ConditionStatus {
	c, ok := in.Conditions[t]
	if !ok {
		return corev1.ConditionUnknown
	}
	return c.Status
}

// Finished reports whether the scan ended (the Completed condition is
// True); a finished scan is never started again.
func (in *VirusScanStatus) Finished() bool {
	return in.Condition(VirusScanConditionTypeCompleted) == corev1.ConditionTrue
}

// VirusScan is one scan of one or more volumes, run as a Kubernetes Job.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:path=virusscans,scope=Namespaced,shortName=vs
// +kubebuilder:printcolumn:name="Summary",type="string",JSONPath=".status.summary",description="A summary of the scan's state"
// +kubebuilder:printcolumn:name="Scheduled",type="date",JSONPath=".status.conditions.Scheduled.lastTransitionTime",description="When the scan was scheduled"
// +kubebuilder:printcolumn:name="Completed",type="date",JSONPath=".status.conditions.Completed.lastTransitionTime",description="When the scan completed"
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
type VirusScan struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is what to scan.
	Spec VirusScanSpec `json:"spec,omitempty"`
	// Status is the scan's state and results.
	Status VirusScanStatus `json:"status,omitempty"`
}

// VirusScanTemplate is the VirusScan a ScheduledVirusScan creates.
type VirusScanTemplate struct {
	// Metadata's labels and annotations are copied to each VirusScan.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// Spec is each VirusScan's spec.
	Spec VirusScanSpec `json:"spec"`
}

// VirusScanList is a list of VirusScans.
// +kubebuilder:object:root=true
type VirusScanList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the VirusScans.
	Items []VirusScan `json:"items"`
}
