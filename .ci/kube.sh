# A real Kubernetes control plane (etcd + kube-apiserver, no kubelet, no
# controller manager) for the operator's tests, on 127.0.0.1.
#
# Neither binary has a Debian package and no release download is reachable,
# so both are built from the Go module proxy through the wrapper module in
# .ci/kube (see its go.mod), once per machine, into a folder named for the
# version, and reused when present (cold on 2 busy cores: kube-apiserver
# 9.5 minutes and 2.4 GB peak, etcd under a minute).
#
#   . .ci/services.sh; . .ci/kube.sh
#   build_kube    # exports LAZARET_KUBE_BIN (the folder with both binaries)
#   start_kube    # exports LAZARET_TEST_KUBECONFIG (cluster-admin)
#
# start_kube needs services.sh (its $LZ folder, pids and free_port).

KUBE_VERSION=v1.37.2
KUBE_BIN_DIR="${LAZARET_KUBE_BIN:-$HOME/.cache/lazaret/kube-$KUBE_VERSION}"

# build_kube builds kube-apiserver and etcd unless they are there.
build_kube() {
  if [ -x "$KUBE_BIN_DIR/kube-apiserver" ] && [ -x "$KUBE_BIN_DIR/etcd" ]; then
    export LAZARET_KUBE_BIN="$KUBE_BIN_DIR"
    return 0
  fi
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  # Without the version stamps the server reports v0.0.0 and clients
  # (kubectl, client-go's discovery) cannot parse its version.
  local ldf="-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -s -w"
  mkdir -p "$KUBE_BIN_DIR"
  (cd .ci/kube &&
    go build -trimpath -ldflags "$ldf" -o "$KUBE_BIN_DIR/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver &&
    go build -trimpath -ldflags "-s -w" -o "$KUBE_BIN_DIR/etcd.tmp" go.etcd.io/etcd/server/v3) || return 1
  # Renamed only when both built, so an interrupted build is not reused.
  mv "$KUBE_BIN_DIR/kube-apiserver.tmp" "$KUBE_BIN_DIR/kube-apiserver"
  mv "$KUBE_BIN_DIR/etcd.tmp" "$KUBE_BIN_DIR/etcd"
  export LAZARET_KUBE_BIN="$KUBE_BIN_DIR"
}

# stop_kube stops the control plane started by start_kube. SIGKILL: after
# SIGTERM the API server does not end promptly once etcd is gone, and
# nothing of this throwaway cluster is kept.
stop_kube() {
  local p
  for p in ${KUBE_APISERVER_PID:-} ${KUBE_ETCD_PID:-}; do
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true # reaped here, so bash reports no "Killed"
  done
  KUBE_APISERVER_PID= KUBE_ETCD_PID=
}

# start_kube starts etcd and kube-apiserver on free loopback ports and
# writes a kubeconfig with a cluster-admin token; ready in a few seconds.
start_kube() {
  local K="$LZ/kube"; mkdir -p "$K/etcd" "$K/certs"
  local etcd_port peer_port api_port token
  etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port)
  "$KUBE_BIN_DIR/etcd" --name lz --data-dir "$K/etcd" --log-level warn --unsafe-no-fsync \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "lz=http://127.0.0.1:$peer_port" > "$K/etcd.log" 2>&1 &
  KUBE_ETCD_PID=$!
  # The service-account signing key; the serving certificate (and the CA
  # that signed it, in the same file) the API server makes for itself in
  # --cert-dir, which the kubeconfig trusts.
  openssl genrsa -out "$K/sa.key" 2048 2>/dev/null
  token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  echo "$token,lazaret-admin,lazaret-admin,system:masters" > "$K/tokens.csv"
  # ServiceAccount admission is off, as in controller-runtime's envtest:
  # no controller manager runs to create the namespaces' default accounts.
  # No endpoint reconciler: it refuses a loopback advertise address, and
  # nothing here reaches the API server through its Service.
  "$KUBE_BIN_DIR/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" --cert-dir "$K/certs" \
    --service-cluster-ip-range 10.0.0.0/24 --allow-privileged=true --authorization-mode RBAC \
    --token-auth-file "$K/tokens.csv" --disable-admission-plugins ServiceAccount --endpoint-reconciler-type none \
    --service-account-issuer "https://127.0.0.1:$api_port" --service-account-key-file "$K/sa.key" \
    --service-account-signing-key-file "$K/sa.key" > "$K/apiserver.log" 2>&1 &
  KUBE_APISERVER_PID=$!
  trap 'stop_kube; lz_cleanup' EXIT
  local i
  for i in $(seq 1 120); do
    if curl -fsk -o /dev/null -H "Authorization: Bearer $token" "https://127.0.0.1:$api_port/readyz"; then
      break
    fi
    if [ "$i" = 120 ]; then
      echo "kube-apiserver not ready after 60 s"; tail -n 30 "$K/apiserver.log" "$K/etcd.log"; return 1
    fi
    sleep 0.5
  done
  cat > "$K/kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: lazaret-test
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $K/certs/apiserver.crt
users:
- name: lazaret-admin
  user:
    token: $token
contexts:
- name: lazaret-test
  context: {cluster: lazaret-test, user: lazaret-admin}
current-context: lazaret-test
YAML
  export LAZARET_TEST_KUBECONFIG="$K/kubeconfig"
}
