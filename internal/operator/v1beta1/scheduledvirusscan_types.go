package v1beta1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ScheduledVirusScanSpec defines when VirusScans are created and from what.
type ScheduledVirusScanSpec struct {
	// Schedule is a standard five-field cron schedule ("0 */3 * * *") or
	// a descriptor (@hourly, @daily, @every 1h30m), evaluated in UTC
	// unless prefixed with CRON_TZ=Area/City.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^((CRON_)?TZ=[^ ]+ +)?(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|@every [0-9][0-9a-z.]*|[^ @]+( +[^ ]+){4})$`
	Schedule string `json:"schedule"`

	// HistorySize is how many completed VirusScans created from this
	// schedule are kept; older ones are deleted. Default 5.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	HistorySize *int32 `json:"historySize,omitempty"`

	// Template is the VirusScan to create.
	Template VirusScanTemplate `json:"template"`
}

// ScheduledVirusScanStatus is the observed state of a ScheduledVirusScan.
type ScheduledVirusScanStatus struct {
	// LastScheduledScan refers to the VirusScan created last.
	// +optional
	LastScheduledScan *corev1.ObjectReference `json:"lastScheduledScan,omitempty"`

	// LastScheduledTime is the schedule time of the last VirusScan.
	// +optional
	LastScheduledTime *metav1.Time `json:"lastScheduledTime,omitempty"`
}

// ScheduledVirusScan creates VirusScans on a cron schedule and keeps the
// last few.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:path=scheduledvirusscans,scope=Namespaced,shortName=svs
// +kubebuilder:printcolumn:name="Schedule",type="string",JSONPath=".spec.schedule",description="When VirusScans are created"
// +kubebuilder:printcolumn:name="Last scan",type="string",JSONPath=".status.lastScheduledScan.name",description="The VirusScan created last"
// +kubebuilder:printcolumn:name="Last scheduled",type="date",JSONPath=".status.lastScheduledTime",description="When the last VirusScan was scheduled"
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
type ScheduledVirusScan struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is when to scan and what.
	Spec ScheduledVirusScanSpec `json:"spec,omitempty"`
	// Status records the last scan created.
	Status ScheduledVirusScanStatus `json:"status,omitempty"`
}

// ScheduledVirusScanList is a list of ScheduledVirusScans.
// +kubebuilder:object:root=true
type ScheduledVirusScanList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the ScheduledVirusScans.
	Items []ScheduledVirusScan `json:"items"`
}
