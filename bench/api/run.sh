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
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-1000}
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
clamd -c "$W/clamd/clamd.conf" & CPID=$!; pids+=($CPID)
"$W/lztest" wait-clamd "$CP"

LP=$("$W/lztest" free-port)
cat > "$W/lazaret.yaml" <<CONF
listen: 127.0.0.1:$LP
data_dir: $W/data
log: {level: warn}
engines:
  - {name: clamav, type: clamd, address: tcp://127.0.0.1:$CP, timeout: 10m}
CONF

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

TMPDIR=$W "$W/lazaret" serve --config "$W/lazaret.yaml" & LPID=$!; pids+=($LPID)
until curl -sf "http://127.0.0.1:$LP/readyz" >/dev/null; do sleep 0.05; done

echo "== /v1/scan vs raw clamd INSTREAM, 16 KiB, over TCP"
"$W/apibench" -clamd "tcp://127.0.0.1:$CP" -lazaret "http://127.0.0.1:$LP" -clamd-pid $CPID -lazaret-pid $LPID -n "$N" -size 16384 -c 1,4,16

# The same clamd through its unix socket: a second server, stopped after.
LU=$("$W/lztest" free-port)
cat > "$W/lazaret-unix.yaml" <<CONF
listen: 127.0.0.1:$LU
data_dir: $W/data-unix
log: {level: warn}
engines:
  - {name: clamav, type: clamd, address: unix://$W/clamd/clamd.sock, timeout: 10m}
CONF
TMPDIR=$W "$W/lazaret" serve --config "$W/lazaret-unix.yaml" & UPID=$!
until curl -sf "http://127.0.0.1:$LU/readyz" >/dev/null; do sleep 0.05; done
echo "== /v1/scan vs raw clamd INSTREAM, 16 KiB, both over clamd's unix socket (lazaret passes descriptors)"
"$W/apibench" -clamd "unix://$W/clamd/clamd.sock" -lazaret "http://127.0.0.1:$LU" -clamd-pid $CPID -lazaret-pid $UPID -n "$N" -size 16384 -c 1,4,16
kill $UPID; wait $UPID 2>/dev/null || true
echo "== /v1/scan vs raw clamd INSTREAM, 4 MiB"
"$W/apibench" -clamd "tcp://127.0.0.1:$CP" -lazaret "http://127.0.0.1:$LP" -clamd-pid $CPID -lazaret-pid $LPID -n $(( N / 10 )) -size 4194304 -c 1,4

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
