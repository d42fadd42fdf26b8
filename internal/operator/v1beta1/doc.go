// Package v1beta1 is the av.mittwald.systems/v1beta1 API that lazaret's
// Kubernetes operator serves: KubeAV's VirusScan and ScheduledVirusScan
// resources with the same group, kinds, field names and status shape, so
// that manifests and tooling written for KubeAV keep working. lazaret adds
// fields (scanErrors, report) but renames or removes none.
//
// The CRD manifests in deploy/operator/crds and zz_generated.deepcopy.go
// are generated from the markers in this package:
//
//	go generate ./internal/operator/v1beta1
//
// +kubebuilder:object:generate=true
// +groupName=av.mittwald.systems
package v1beta1

//go:generate go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0 object paths=. crd:generateEmbeddedObjectMeta=true output:crd:artifacts:config=../../../deploy/operator/crds
