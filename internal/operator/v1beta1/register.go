package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of the resources, KubeAV's.
var GroupVersion = schema.GroupVersion{Group: "av.mittwald.systems", Version: "v1beta1"}

// AddToScheme registers the resources' Go types with a scheme. It is an
// explicit call rather than an init-time registration so that nothing is
// added to a scheme behind the caller's back.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&VirusScan{}, &VirusScanList{},
		&ScheduledVirusScan{}, &ScheduledVirusScanList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
