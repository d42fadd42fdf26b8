#!/usr/bin/env bash
# lazaret's HTTP API against raw clamd, side by side, on one clamd:
#   1. POST /v1/scan vs naive raw zINSTREAM (no HTTP), fresh 16 KiB files,
#      concurrency 1/4/16 (target: ratio >= 0.9 at 4), over TCP and then
#      both over clamd's unix socket, where lazaret hands clamd each
#      in-memory sample as a file descriptor (zFILDES); then 4 MiB files
#   2. `lazaret serve` start to ready on embedded defaults (target < 1 s)
#   3. one 1 GiB upload: the server's peak RSS (target < 100 MiB)
#   4. `lazaret scan --server` on 1,000 known files (hash first) vs uploading them
#
#   bash bench/api/run.sh        # N=1000 files per cell by default
#
# With CLAMAV_REST_BIN=path/to/clamav-rest (built by bench/api/clamav-rest.sh
# from a checkout of github.com/ajilach/clamav-rest), the 16 KiB parts also
# measure clamav-rest's POST /v2/scan on the same clamd, over the same
# transport as lazaret (TCP, then the unix socket), in the same alternating
# slices, and print lazaret/clamav-rest (target >= 1.5). ONLY=rest runs only
# those two parts:
#   CLAMAV_REST_BIN=/tmp/clamav-rest ONLY=rest bash bench/api/run.sh
#
# PIN=1 gives clamd a core of its own (taskset: clamd on CPU 1, everything
# else on CPU 0), as when clamd runs as its own container or host: the
# front-ends then compete with the load generator, not with clamd. Without
# it every process shares every core, and on a small machine the ratio
# mostly compares CPU spent per file.
set -euo pipefail
if [ -n "${CLAMAV_REST_BIN:-}" ]; then CLAMAV_REST_BIN=$(realpath "$CLAMAV_REST_BIN"); fi
ONLY=${ONLY:-}
case "$ONLY" in
  "") ;;
  rest) [ -n "${CLAMAV_REST_BIN:-}" ] || { echo "ONLY=rest needs CLAMAV_REST_BIN" >&2; exit 2; } ;;
  *) echo "ONLY must be empty or rest" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/../.."
N=${N:-1000}
on_clamd=() on_front=()
if [ "${PIN:-}" = 1 ]; then
  [ "$(nproc)" -ge 2 ] || { echo "PIN=1 needs two CPUs" >&2; exit 2; }
  on_clamd=(taskset -c 1) on_front=(taskset -c 0)
fi
W=$(mktemp -d /tmp/lazaret-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

go build -o "$W/lazaret" ./cmd/lazaret
go build -o "$W/apibench" ./bench/api
go build -o "$W/lztest" ./internal/testenv/lztest

# clamd with the test signatures, limits that admit a 1 GiB stream.
mkdir -p "$W/clamd/tmp"
"$W/lztest" sigs "$W/clamd/sigs"
CP=$("$W/lztest" free-port)
cat > "$W/clamd/clamd.conf" <<CONF
Foreground yes
LogFile $W/clamd/clamd.log
TemporaryDirectory $W/clamd/tmp
DatabaseDirectory $W/clamd/sigs
TCPSocket $CP
TCPAddr 127.0.0.1
LocalSocket $W/clamd/clamd.sock
StreamMaxLength 1100M
MaxFileSize 1100M
MaxScanSize 1100M
MaxThreads 16
CONF
"${on_clamd[@]}" clamd -c "$W/clamd/clamd.conf" & CPID=$!; pids+=($CPID)
"$W/lztest" wait-clamd "$CP"

LP=$("$W/lztest" free-port)
cat > "$W/lazaret.yaml" <<CONF
listen: 127.0.0.1:$LP
data_dir: $W/data
log: {level: warn}
engines:
  - {name: clamav, type: clamd, address: tcp://127.0.0.1:$CP, timeout: 10m}
CONF

if [ -z "$ONLY" ]; then
echo "== serve: start to ready, embedded defaults (builtin engine), 5 runs"
for i in 1 2 3 4 5; do
  P2=$("$W/lztest" free-port)
  rm -rf "$W/d0"
  start=$(date +%s%N)
  "$W/lazaret" serve --listen 127.0.0.1:$P2 --data-dir "$W/d0" 2>/dev/null & sp=$!
  until curl -sf "http://127.0.0.1:$P2/readyz" >/dev/null; do sleep 0.005; done
  end=$(date +%s%N)
  echo "run $i: $(( (end - start) / 1000000 )) ms"
  kill $sp; wait $sp 2>/dev/null || true
done
fi

TMPDIR=$W "${on_front[@]}" "$W/lazaret" serve --config "$W/lazaret.yaml" & LPID=$!; pids+=($LPID)
until curl -sf "http://127.0.0.1:$LP/readyz" >/dev/null; do sleep 0.05; done

# start_rest ADDR starts clamav-rest on clamd at ADDR and sets rest to
# apibench's flags for it (none without CLAMAV_REST_BIN). It reads its
# settings from the environment (CLAMD_PORT is clamd's address, PORT its
# HTTP port; no SSL_PORT: no HTTPS listener) and logs a few lines to stdout
# per file, which go to /dev/null, its cheapest sink.
rest=() RPID=
start_rest() {
  rest=()
  [ -n "${CLAMAV_REST_BIN:-}" ] || return 0
  local rp; rp=$("$W/lztest" free-port)
  env -u SSL_PORT CLAMD_PORT="$1" PORT="$rp" MAX_RECONNECT_TIME=5 \
    "${on_front[@]}" "$CLAMAV_REST_BIN" >/dev/null 2>"$W/clamav-rest.err" & RPID=$!; pids+=($RPID)
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$rp/version" >/dev/null && break; sleep 0.05; done
  curl -sf "http://127.0.0.1:$rp/version" >/dev/null || {
    echo "clamav-rest did not start; try: CLAMD_PORT=$1 PORT=$rp $CLAMAV_REST_BIN" >&2
    cat "$W/clamav-rest.err" >&2; exit 1; }
  rest=(-clamav-rest "http://127.0.0.1:$rp" -clamav-rest-pid "$RPID")
}
stop_rest() { if [ -n "$RPID" ]; then kill "$RPID"; wait "$RPID" 2>/dev/null || true; RPID=; fi; }
with_rest() { if [ -n "${CLAMAV_REST_BIN:-}" ]; then echo " vs clamav-rest /v2/scan"; fi; }

start_rest "tcp://127.0.0.1:$CP"
echo "== /v1/scan vs raw clamd INSTREAM$(with_rest), 16 KiB, all over TCP"
"${on_front[@]}" "$W/apibench" -clamd "tcp://127.0.0.1:$CP" -lazaret "http://127.0.0.1:$LP" -clamd-pid $CPID -lazaret-pid $LPID "${rest[@]}" -n "$N" -size 16384 -c 1,4,16
stop_rest
# The same clamd through its unix socket: a second server, stopped after.
LU=$("$W/lztest" free-port)
cat > "$W/lazaret-unix.yaml" <<CONF
listen: 127.0.0.1:$LU
data_dir: $W/data-unix
log: {level: warn}
engines:
  - {name: clamav, type: clamd, address: unix://$W/clamd/clamd.sock, timeout: 10m}
CONF
TMPDIR=$W "${on_front[@]}" "$W/lazaret" serve --config "$W/lazaret-unix.yaml" & UPID=$!
until curl -sf "http://127.0.0.1:$LU/readyz" >/dev/null; do sleep 0.05; done
start_rest "unix://$W/clamd/clamd.sock"
echo "== /v1/scan vs raw clamd INSTREAM$(with_rest), 16 KiB, all over clamd's unix socket (lazaret passes descriptors)"
"${on_front[@]}" "$W/apibench" -clamd "unix://$W/clamd/clamd.sock" -lazaret "http://127.0.0.1:$LU" -clamd-pid $CPID -lazaret-pid $UPID "${rest[@]}" -n "$N" -size 16384 -c 1,4,16
stop_rest
kill $UPID; wait $UPID 2>/dev/null || true
if [ "$ONLY" = rest ]; then exit 0; fi
echo "== /v1/scan vs raw clamd INSTREAM, 4 MiB"
"${on_front[@]}" "$W/apibench" -clamd "tcp://127.0.0.1:$CP" -lazaret "http://127.0.0.1:$LP" -clamd-pid $CPID -lazaret-pid $LPID -n $(( N / 10 )) -size 4194304 -c 1,4

echo "== one 1 GiB upload"
head -c 1G /dev/urandom > "$W/big.bin"
before=$(grep VmHWM /proc/$LPID/status)
t0=$(date +%s%N)
curl -sS -X POST -H 'Content-Type: application/octet-stream' -T "$W/big.bin" "http://127.0.0.1:$LP/v1/scan?name=big.bin" | head -c 300; echo
t1=$(date +%s%N)
echo "server peak RSS before: $before; after: $(grep VmHWM /proc/$LPID/status); upload+scan $(( (t1 - t0) / 1000000 )) ms"
rm -f "$W/big.bin"

echo "== lazaret scan --server: 1,000 files uploaded, then the same 1,000 known (hash first)"
mkdir -p "$W/files"
for i in $(seq 1 1000); do head -c 16384 /dev/urandom > "$W/files/$i.bin"; done
ls -d "$W"/files/* > "$W/list.txt"
t0=$(date +%s%N); "$W/lazaret" scan --server "http://127.0.0.1:$LP" --file-list "$W/list.txt" >/dev/null; t1=$(date +%s%N)
"$W/lazaret" scan --server "http://127.0.0.1:$LP" --file-list "$W/list.txt" >/dev/null; t2=$(date +%s%N)
up=$(( (t1 - t0) / 1000000 )); known=$(( (t2 - t1) / 1000000 ))
echo "upload: $up ms; known (hash first): $known ms; speed-up $(awk "BEGIN{printf \"%.1f\", $up/$known}")x"
