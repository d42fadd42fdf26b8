#!/usr/bin/env bash
# Two lazaret servers side by side on one clamd (its unix socket), in
# alternating rounds: for comparing two builds, or one build under two
# environments, by lazaret's CPU per request (read from /proc), which is
# steadier than throughput on a shared machine.
#
#   bash bench/api/ab.sh A_BINARY B_BINARY                     # two builds
#   B_ENV=GOMAXPROCS=1 bash bench/api/ab.sh BIN BIN            # one build, two environments
#   ROUNDS=3 N=3000 C=4 SIZE=16384 bash bench/api/ab.sh A B    # the defaults
#
# Each line is apibench's: files/s of raw INSTREAM and of /v1/scan, their
# ratio, and CPU µs per file (client+clamd, client+lazaret+clamd).
set -euo pipefail
A=$(realpath "$1") B=$(realpath "$2")
cd "$(dirname "$0")/../.."
. .ci/services.sh   # stops what it started, and removes $LZ, on exit
start_clamd
CPID=${pids[-1]} SOCK=$LZ/clamd/clamd.sock
go build -o "$LZ/apibench" ./bench/api
declare -A port pid
for x in A B; do
  port[$x]=$(free_port)
  cat > "$LZ/$x.yaml" <<CONF
listen: 127.0.0.1:${port[$x]}
data_dir: $LZ/data-$x
log: {level: warn}
engines:
  - {name: clamav, type: clamd, address: unix://$SOCK, timeout: 10m}
CONF
  bin=$A envs=${A_ENV:-}
  if [ $x = B ]; then bin=$B envs=${B_ENV:-}; fi
  env $envs TMPDIR=$LZ "$bin" serve --config "$LZ/$x.yaml" & pid[$x]=$!; pids+=("${pid[$x]}")
  until curl -sf "http://127.0.0.1:${port[$x]}/readyz" >/dev/null; do sleep 0.05; done
done
echo "A: $A ${A_ENV:-}"; echo "B: $B ${B_ENV:-}"
for r in $(seq "${ROUNDS:-3}"); do
  for x in A B; do
    printf 'round %d %s: ' "$r" "$x"
    "$LZ/apibench" -clamd "unix://$SOCK" -lazaret "http://127.0.0.1:${port[$x]}" -clamd-pid "$CPID" \
      -lazaret-pid "${pid[$x]}" -n "${N:-3000}" -c "${C:-4}" -slices 2 -size "${SIZE:-16384}" | tail -1
  done
done
