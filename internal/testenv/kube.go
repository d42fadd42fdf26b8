package testenv

import "testing"

// EnvKubeconfig names the kubeconfig of a real Kubernetes API server
// (etcd + kube-apiserver, as .ci/kube.sh's start_kube runs them) with
// cluster-admin rights, for the operator's tests.
const EnvKubeconfig = "LAZARET_TEST_KUBECONFIG"

// Kubeconfig returns the kubeconfig path from LAZARET_TEST_KUBECONFIG,
// or skips (fails under CI). It returns a path rather than a client so
// that the many tests importing testenv do not all link client-go.
func Kubeconfig(t testing.TB) string {
	t.Helper()
	return fromEnv(t, EnvKubeconfig, "a Kubernetes API server (. .ci/services.sh; . .ci/kube.sh; build_kube; start_kube)")
}
