#!/usr/bin/env bash
# `lazaret proxy` against direct fetches from the same upstream, side by side:
# 1,000 small files (first fetch, cached fetch; target: cached <= 1.2x direct)
# and the first byte of a 100 MiB file. Builtin engine (embedded defaults).
# The upstream is a Go file server in a process of its own (as the proxy is);
# the same files served from inside the benchmark process are measured too.
# Cached fetches run in ROUNDS rounds of REPEAT passes; medians are printed.
#   bash bench/proxy/run.sh            # N=1000 SIZE=16384 BIG=100 C=8 ROUNDS=9 REPEAT=5
set -euo pipefail
cd "$(dirname "$0")/../.."
W=$(mktemp -d /tmp/lazaret-bench.XXXXXX); trap 'rm -rf "$W"' EXIT
go build -o "$W/lazaret" ./cmd/lazaret
go build -o "$W/proxybench" ./bench/proxy
"$W/proxybench" -lazaret "$W/lazaret" -n "${N:-1000}" -size "${SIZE:-16384}" -big "${BIG:-100}" -c "${C:-8}" \
  -rounds "${ROUNDS:-9}" -repeat "${REPEAT:-5}"
