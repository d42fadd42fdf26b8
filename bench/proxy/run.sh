#!/usr/bin/env bash
# `lazaret proxy` against direct fetches from the same upstream, side by side:
# 1,000 small files (first fetch, cached fetch; target: cached <= 1.2x direct)
# and the first byte of a 100 MiB file. Builtin engine (embedded defaults).
#   bash bench/proxy/run.sh            # N=1000 SIZE=16384 BIG=100 C=8
set -euo pipefail
cd "$(dirname "$0")/../.."
W=$(mktemp -d /tmp/lazaret-bench.XXXXXX); trap 'rm -rf "$W"' EXIT
go build -o "$W/lazaret" ./cmd/lazaret
go run ./bench/proxy -lazaret "$W/lazaret" -n "${N:-1000}" -size "${SIZE:-16384}" -big "${BIG:-100}" -c "${C:-8}"
